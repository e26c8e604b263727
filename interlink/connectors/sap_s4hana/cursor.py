"""The SAP connector's cursor: a high-water mark on the change time, and the position of an unfinished pass.

A pass reads the records of one window in key order, in batches that each
start after the last key of the batch before (keyset paging). While a pass
runs, every page's cursor keeps the window's lower bound and the last key
read, so a pass that stopped resumes at the next key of the same window. Only
the last page of a pass moves the high-water mark.

Change marks are ISO 8601 strings: UTC times for ``Edm.DateTimeOffset``
stamps, local times without offset for the date-and-time stamps SAP keeps in
the system's time zone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Literal

logger = logging.getLogger(__name__)

PassKind = Literal["full", "incremental", "sweep"]
VERSION = 1


@dataclass(frozen=True)
class Position:
    """An unfinished pass: what it reads, from where, and how far it got."""

    kind: PassKind
    lower: str
    started_at: str
    after: str | None = None
    high: str | None = None


@dataclass(frozen=True)
class Cursor:
    """The committed state of one entity's reads."""

    hwm: str | None = None
    # When the last pass that read every record with its items began (a full read or a sweep).
    swept_at: str | None = None
    position: Position | None = None

    def encode(self) -> str:
        body = {"v": VERSION, **asdict(self)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        """Read a stored cursor; one this version cannot read starts the entity over, with a warning."""
        if not text:
            return cls()
        try:
            body = json.loads(text)
            if body.get("v") != VERSION:
                raise ValueError(f"cursor version {body.get('v')!r} is not {VERSION}")
            position = Position(**body["position"]) if body.get("position") else None
            return cls(hwm=body.get("hwm"), swept_at=body.get("swept_at"), position=position)
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("sap.cursor.unreadable error=%s", exc)
            return cls()

    def advanced(self, position: Position, *, after: str, high: str | None) -> Cursor:
        """Return the cursor after a page of an unfinished pass."""
        return replace(self, position=replace(position, after=after, high=high))

    def finished(self, position: Position, *, high: str | None) -> Cursor:
        """Return the cursor after the last page of a pass: the mark moves, never backwards."""
        swept_at = position.started_at if position.kind in ("full", "sweep") else self.swept_at
        return Cursor(hwm=later(self.hwm, high), swept_at=swept_at, position=None)


def later(first: str | None, second: str | None) -> str | None:
    """Return the later of two change marks of the same kind."""
    if first is None:
        return second
    if second is None:
        return first
    return first if datetime.fromisoformat(first) >= datetime.fromisoformat(second) else second
