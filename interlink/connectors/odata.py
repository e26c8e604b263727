"""OData v2 and v4 helpers shared by connectors: literals, key predicates, filters, JSON values.

Literal syntax follows the OData v2 URI conventions (``'text'``,
``datetimeoffset'2024-05-01T08:00:00Z'``, ``datetime'2024-05-01T00:00:00'``,
``guid'...'``, ``12.50M``) and the OData v4 ABNF (``'text'``,
``2024-05-01T08:00:00Z``, ``2024-05-01``, plain GUIDs and numbers). In both
versions a single quote inside a string literal is doubled.

OData v2 verbose JSON writes ``Edm.DateTime`` as ``/Date(<ms>)/`` and
``Edm.DateTimeOffset`` as ``/Date(<ms>+<minutes>)/``. The milliseconds count
from the Unix epoch in UTC, and the four digits after the sign are an offset
in minutes. SAP's Cloud SDK for JavaScript reads them the same way
(``edmDateTimeToMoment`` in ``@sap-cloud-sdk/odata-v2``). ``Edm.Time`` is an
ISO 8601 duration such as ``PT15H51M04S``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal
from urllib.parse import quote
from uuid import UUID

ODataVersion = Literal[2, 4]
LiteralValue = str | bool | int | Decimal | datetime | date | time | UUID | None
ComparisonOperator = Literal["eq", "ne", "gt", "ge", "lt", "le"]

_JSON_DATE = re.compile(r"^/Date\((?P<ms>-?\d+)(?:(?P<sign>[+-])(?P<offset>\d{4}))?\)/$")
_EDM_TIME = re.compile(
    r"^PT(?:(?P<h>\d{1,2})H)?(?:(?P<m>\d{1,2})M)?(?:(?P<s>\d{1,2})(?:\.(?P<f>\d{1,6}))?S)?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Characters left as they are in a key predicate placed in a URL path segment.
_PATH_SAFE = "'(),=:@!$*+-._~"


def quote_string(value: str) -> str:
    """Quote ``value`` as an OData string literal, doubling any single quote inside it."""
    return "'" + value.replace("'", "''") + "'"


def format_literal(value: LiteralValue, *, version: ODataVersion = 2) -> str:
    """Format ``value`` as an OData literal for ``$filter`` expressions and key predicates.

    Aware datetimes become ``Edm.DateTimeOffset`` literals in UTC; naive
    datetimes and dates become OData v2 ``Edm.DateTime`` literals, which v4 does
    not have for naive datetimes (``ValueError``).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _format_decimal(value, version)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, datetime):
        return _format_datetime(value, version)
    if isinstance(value, date):
        return f"datetime'{value.isoformat()}T00:00:00'" if version == 2 else value.isoformat()
    if isinstance(value, time):
        return _format_time(value, version)
    return f"guid'{value}'" if version == 2 else str(value)


def _format_decimal(value: Decimal, version: ODataVersion) -> str:
    if not value.is_finite():
        raise ValueError(f"decimal value {value} is not finite and has no OData literal")
    text = format(value, "f")
    return f"{text}M" if version == 2 else text


def _format_datetime(value: datetime, version: ODataVersion) -> str:
    if value.tzinfo is None:
        if version == 4:
            raise ValueError(
                f"naive datetime {value.isoformat()} has no OData v4 literal; give it a UTC offset"
            )
        return f"datetime'{_iso_seconds(value)}'"
    text = _iso_seconds(value.astimezone(UTC)) + "Z"
    return f"datetimeoffset'{text}'" if version == 2 else text


def _format_time(value: time, version: ODataVersion) -> str:
    if version == 4:
        return value.isoformat()
    seconds = f"{value.second:02d}" + (f".{value.microsecond:06d}".rstrip("0") if value.microsecond else "")
    return f"time'PT{value.hour:02d}H{value.minute:02d}M{seconds}S'"


def _iso_seconds(value: datetime) -> str:
    """Format without offset, with milliseconds only when the value has a fraction."""
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def key_predicate(key: Mapping[str, LiteralValue] | LiteralValue, *, version: ODataVersion = 2) -> str:
    """Build a key predicate: ``('4500000001')`` or ``(PurchaseOrder='45',PurchaseOrderItem='10')``."""
    if isinstance(key, Mapping):
        if not key:
            raise ValueError("a composite key needs at least one property")
        parts = ",".join(f"{name}={format_literal(value, version=version)}" for name, value in key.items())
        return f"({parts})"
    return f"({format_literal(key, version=version)})"


def entity_path(
    entity_set: str, key: Mapping[str, LiteralValue] | LiteralValue, *, version: ODataVersion = 2
) -> str:
    """Build the URL path segment of one entity, percent-encoding what a key may contain.

    A slash, question mark, hash, percent sign or space inside a key value is
    encoded (``'A/1'`` becomes ``'A%2F1'``), so the key stays one path segment.
    """
    return entity_set + quote(key_predicate(key, version=version), safe=_PATH_SAFE)


def compare(
    property_name: str, operator: ComparisonOperator, value: LiteralValue, *, version: ODataVersion = 2
) -> str:
    """Build one comparison such as ``LastChangeDateTime ge datetimeoffset'...'``."""
    return f"{property_name} {operator} {format_literal(value, version=version)}"


def all_of(*expressions: str) -> str:
    """Join filter expressions with ``and``, each in parentheses; empty expressions are skipped."""
    return _join("and", expressions)


def any_of(*expressions: str) -> str:
    """Join filter expressions with ``or``, each in parentheses; empty expressions are skipped."""
    return _join("or", expressions)


def _join(operator: str, expressions: tuple[str, ...]) -> str:
    present = [expression for expression in expressions if expression]
    if len(present) == 1:
        return present[0]
    return f" {operator} ".join(f"({expression})" for expression in present)


def parse_json_datetime_offset(value: str) -> datetime:
    """Parse an OData v2 JSON ``/Date(ms)/`` or ``/Date(ms+mmmm)/`` value into an aware UTC datetime.

    The milliseconds already count in UTC. The offset only names the zone the
    source displayed the value in, so the instant does not depend on it.
    """
    match = _match_json_date(value)
    return _EPOCH + timedelta(milliseconds=int(match["ms"]))


def parse_json_datetime(value: str) -> datetime:
    """Parse an OData v2 ``Edm.DateTime`` JSON value into a naive datetime, as the source stored it.

    ``Edm.DateTime`` carries no zone: SAP writes the wall-clock value as if it
    were UTC, so the result is that wall-clock time without a zone.
    """
    match = _match_json_date(value)
    if match["sign"]:
        raise ValueError(f"{value!r} carries an offset; parse it with parse_json_datetime_offset")
    return (_EPOCH + timedelta(milliseconds=int(match["ms"]))).replace(tzinfo=None)


def parse_json_date(value: str) -> date:
    """Parse an OData v2 ``Edm.DateTime`` JSON value that contains a calendar date."""
    return parse_json_datetime(value).date()


def _match_json_date(value: str) -> re.Match[str]:
    match = _JSON_DATE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not an OData v2 JSON date; expected /Date(<milliseconds>)/")
    return match


def format_json_datetime(value: datetime) -> str:
    """Format a datetime as OData v2 JSON ``/Date(ms)/``; a naive value is written as its wall-clock time."""
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return f"/Date({_milliseconds(moment)})/"


def format_json_datetime_offset(value: datetime) -> str:
    """Format an aware datetime as OData v2 JSON ``/Date(ms+0000)/``, the offset in minutes."""
    if value.tzinfo is None:
        raise ValueError(f"datetime {value.isoformat()} needs an offset to be an Edm.DateTimeOffset")
    offset = value.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"/Date({_milliseconds(value)}{sign}{abs(minutes):04d})/"


def _milliseconds(value: datetime) -> int:
    delta = value - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def parse_edm_time(value: str) -> time:
    """Parse an OData v2 ``Edm.Time`` value such as ``PT15H51M04S``."""
    match = _EDM_TIME.match(value)
    if match is None or value == "PT":
        raise ValueError(f"{value!r} is not an OData v2 Edm.Time; expected PT<h>H<m>M<s>S")
    fraction = (match["f"] or "").ljust(6, "0")
    return time(int(match["h"] or 0), int(match["m"] or 0), int(match["s"] or 0), int(fraction or 0))


def format_edm_time(value: time) -> str:
    """Format a time of day as an OData v2 ``Edm.Time`` JSON value: ``PT15H51M04S``."""
    return f"PT{value.hour:02d}H{value.minute:02d}M{value.second:02d}S"
