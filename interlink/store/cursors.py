"""Opaque list cursors: a position in commit order plus a digest of the filters it was made for."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from interlink.errors import InterlinkError


class InvalidCursor(InterlinkError):
    """A cursor is malformed, or was made for other filters."""


def filters_digest(filters: dict[str, Any]) -> str:
    text = json.dumps(filters, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(position: tuple[int, int], filters: dict[str, Any]) -> str:
    payload = {"p": list(position), "f": filters_digest(filters)}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, filters: dict[str, Any]) -> tuple[int, int]:
    """Return the position in ``cursor``; raise ``InvalidCursor`` if malformed or made for other filters."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        seq, pk = payload["p"]
        digest = payload["f"]
        if not isinstance(seq, int) or not isinstance(pk, int) or not isinstance(digest, str):
            raise TypeError("cursor fields have the wrong types")
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidCursor(
            f"cursor {cursor[:40]!r} is malformed; pass the next_cursor of a previous page unchanged"
        ) from exc
    if digest != filters_digest(filters):
        raise InvalidCursor(
            "cursor was made for other filters; repeat the filters of the request that returned it, "
            "or start again without a cursor"
        )
    return seq, pk
