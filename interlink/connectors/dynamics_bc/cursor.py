"""The cursor of a Business Central read: a high-water mark, line digests and, mid-way, a next link."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cursor:
    """``high_water_mark``: the latest ``lastModifiedDateTime`` known read, capped by when the read began.

    ``lines``: encoded ``LineDigests`` of the last sweep, which began at
    ``swept_at`` by Interlink's clock. ``next_link`` and ``started_at`` are
    set only between the pages of a full read, so a crashed full read
    resumes where it stopped. ``partial_lines`` marks digests that a full
    read is still folding from the lines of the orders it reads.
    """

    high_water_mark: datetime | None = None
    lines: str | None = None
    next_link: str | None = None
    started_at: datetime | None = None
    swept_at: datetime | None = None
    partial_lines: bool = False

    def encode(self) -> str:
        values = {
            "hwm": self.high_water_mark.isoformat() if self.high_water_mark else None,
            "lines": self.lines,
            "next": self.next_link,
            "started": self.started_at.isoformat() if self.started_at else None,
            "swept": self.swept_at.isoformat() if self.swept_at else None,
            "partial": True if self.partial_lines else None,
        }
        return json.dumps({key: value for key, value in values.items() if value is not None}, sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            values = json.loads(text)
            return cls(
                high_water_mark=datetime.fromisoformat(values["hwm"]) if values.get("hwm") else None,
                lines=values.get("lines"),
                next_link=values.get("next"),
                started_at=datetime.fromisoformat(values["started"]) if values.get("started") else None,
                swept_at=datetime.fromisoformat(values["swept"]) if values.get("swept") else None,
                partial_lines=bool(values.get("partial")),
            )
        except (ValueError, TypeError, KeyError):
            logger.warning("dynamics_bc.cursor.invalid action=start_over")
            return cls()


def later(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)


def final_mark(
    latest_seen: datetime | None, started_at: datetime | None, previous: datetime | None
) -> datetime | None:
    """Return the high-water mark after a complete read.

    It never passes the source's clock at the start of the read, because a
    record changed during the read after it was paged over may carry an
    earlier time than the latest one seen. It never moves back either: the
    previous mark was complete when it was stored.
    """
    if latest_seen is None:
        return later(previous, started_at)
    return later(previous, min(latest_seen, started_at) if started_at else latest_seen)
