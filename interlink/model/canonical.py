"""Canonical JSON and the content hash that decides whether a record changed."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from interlink.model.types import format_utc


def json_default(value: Any) -> Any:
    """Encode the values ``json`` cannot: Decimal as a normalized string, times in UTC, dates as ISO."""
    if isinstance(value, Decimal):
        # "210.00", "210.0" and "210" are one value and must hash the same.
        return "0" if value == 0 else format(value.normalize(), "f")
    if isinstance(value, datetime):
        return format_utc(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def canonical_json(value: Any) -> bytes:
    """Serialize to canonical JSON: sorted keys, no spaces, normalized decimals, UTC times."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_default
    ).encode()


def content_hash(value: Any) -> str:
    """Return the hex SHA-256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
