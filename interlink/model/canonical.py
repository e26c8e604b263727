"""Canonical JSON and the content hash that decides whether a record changed.

The canonical form is the output of ``orjson`` with sorted keys and no
whitespace, UTF-8 text unescaped, and these values normalized by
``json_default``: decimals as their shortest plain decimal string ("210.00"
and "210" both become "210"), aware times in UTC with a ``Z`` suffix, naive
times and dates in ISO 8601, sets sorted. Floats are written as orjson
writes them (the shortest text that parses back to the same float). A value
that orjson cannot encode, such as an integer outside the 64-bit range, is
encoded with the standard library's ``json`` by the same rules instead, so
the output depends only on the value.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from interlink.model.types import format_utc

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def json_default(value: Any) -> Any:
    """Encode the values JSON has no type for: Decimal as a normalized string, times in UTC, dates as ISO."""
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
    try:
        return orjson.dumps(value, default=json_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_default
        ).encode()


def content_hash(value: Any) -> str:
    """Return the hex SHA-256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
