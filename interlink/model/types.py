"""Field types shared by the unified entities: decimal strings, UTC times, references."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, WithJsonSchema


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time must carry a UTC offset; naive times are ambiguous")
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """Format an aware time as RFC 3339 in UTC with a ``Z`` suffix."""
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def _format_decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"decimal value {value} is not finite")
    return format(value, "f")


def _check_finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"decimal value {value} is not finite")
    return value


# Money, quantities and hours: kept as Decimal in Python, written as strings in JSON
# ("1234.50"), so no value ever passes through a float.
DecimalString = Annotated[
    Decimal,
    AfterValidator(_check_finite),
    PlainSerializer(_format_decimal, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["1234.50"]}),
]

# A point in time, always stored and written in UTC.
UtcDateTime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class UnifiedModel(BaseModel):
    """Base of every unified shape: unknown fields are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Ref(UnifiedModel):
    """A reference to another record: its Interlink id and the source's key."""

    id: str
    remote_id: str


class Address(UnifiedModel):
    """A postal address; ``country`` is an ISO 3166-1 alpha-2 code where the source has one."""

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None


def dump_json_ready(model: BaseModel) -> dict[str, Any]:
    """Dump a model to plain JSON types, with decimals and times as strings."""
    return model.model_dump(mode="json")
