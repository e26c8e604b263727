"""Reading messages: one filtered ``/sync``, back-filled through ``/rooms/{roomId}/messages``.

A read makes one ``/sync`` call from the stored ``next_batch`` (or none, on a
first or full read). Each joined room's timeline is read newest first. When
the server marks it ``limited``, the gap is back-filled from its
``prev_batch``, so no message is skipped. An incremental read back-fills
down to the previous ``next_batch``, and a first or full read down to the
start of the historical window. Reading newest first means an edit or a redaction is always
seen before the message it changes; messages changed by events of this read
but not read themselves are fetched with ``/rooms/{roomId}/event/{eventId}``
at the end of their room.

A room joined since the previous read has history older than that
read's ``next_batch``, which a back-fill down to it would skip; such a room
is back-filled to the start of the window instead. To tell these rooms
apart, the cursor is JSON with the ``next_batch`` and the ids of the rooms
joined at that point.

Every page but the last carries the cursor the read started from, and the
last page carries the new cursor: the engine commits a page's cursor
with its records, so the new cursor is stored only together with the last
of the records it covers. A run that dies half-way reads the same range
again, and the records it had stored count as unchanged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from interlink.connectors.base import Page, ReadWindow, SourceRecord
from interlink.connectors.errors import PermissionDenied, SourceDataError
from interlink.connectors.matrix.client import MatrixClient, NotFound
from interlink.connectors.matrix.mapping import (
    MESSAGE_TYPES,
    REDACTION_TYPE,
    bundled_replacement,
    event_time,
    latest_event,
    map_message,
    redacted_event_id,
    replaced_event_id,
)

logger = logging.getLogger(__name__)

TIMELINE_TYPES = [*MESSAGE_TYPES, REDACTION_TYPE]
TIMELINE_LIMIT = 100
BACKFILL_LIMIT = 500
# A room whose gap needs more requests than this fails the read instead of
# looping: at BACKFILL_LIMIT events each, that is five million events.
MAX_BACKFILL_REQUESTS = 10_000

MESSAGE_FILTER: dict[str, Any] = {
    "presence": {"types": []},
    "account_data": {"types": []},
    "room": {
        "state": {"types": [], "lazy_load_members": True},
        "ephemeral": {"types": []},
        "account_data": {"types": []},
        "timeline": {"types": TIMELINE_TYPES, "limit": TIMELINE_LIMIT},
    },
}
BACKFILL_FILTER: dict[str, Any] = {"types": TIMELINE_TYPES, "lazy_load_members": True}


@dataclass
class RoomPass:
    """The state of one room during one read: messages read, and edits and redactions waiting for theirs."""

    connection_id: str
    room_id: str
    emitted: set[str] = field(default_factory=set)
    edits: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    redactions: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def consume(self, events: Iterable[Mapping[str, Any]]) -> list[SourceRecord]:
        """Map events given newest first; remember edits and redactions for older messages."""
        records = []
        for event in events:
            event_id = event.get("event_id")
            if not isinstance(event_id, str) or event_id in self.emitted:
                continue
            if event.get("type") == REDACTION_TYPE:
                target = redacted_event_id(event)
                if target is not None:
                    self.redactions.setdefault(target, event)
                continue
            if event.get("type") not in MESSAGE_TYPES:
                continue
            # NOTE: a redacted edit has lost its relation, so it is stored as a deleted
            # message of its own, and the message it edited is not read again.
            target = replaced_event_id(event)
            if target is not None:
                if event_id not in self.redactions:
                    newest = latest_event(self.edits.get(target), event)
                    assert newest is not None
                    self.edits[target] = newest
                continue
            records.append(self.map(event))
        return records

    def map(self, event: Mapping[str, Any]) -> SourceRecord:
        event_id = str(event["event_id"])
        self.emitted.add(event_id)
        replacement = latest_event(bundled_replacement(event), self.edits.get(event_id))
        return map_message(
            self.connection_id,
            self.room_id,
            event,
            replacement=replacement,
            redaction=self.redactions.get(event_id),
        )

    def pending(self) -> list[str]:
        """Return the messages this read changed but did not read, in a stable order."""
        return sorted((set(self.edits) | set(self.redactions)) - self.emitted)


@dataclass(frozen=True)
class SyncPosition:
    """The message cursor: a ``next_batch`` token and the rooms joined when it was issued."""

    next_batch: str | None = None
    rooms: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, cursor: str | None) -> SyncPosition:
        if cursor is None:
            return cls()
        try:
            value = json.loads(cursor)
            return cls(str(value["next_batch"]), frozenset(str(room) for room in value["rooms"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceDataError(
                f"the stored Matrix message cursor is invalid ({exc}); run a full sync to replace it"
            ) from exc

    def knows(self, room_id: str) -> bool:
        """Return whether the room was joined at this position, so its older history was read."""
        return self.next_batch is not None and room_id in self.rooms

    def advance(self, next_batch: str, *, joined: set[str], left: set[str]) -> SyncPosition:
        return SyncPosition(next_batch, (self.rooms | joined) - left)

    def dump(self) -> str:
        return json.dumps({"next_batch": self.next_batch, "rooms": sorted(self.rooms)}, separators=(",", ":"))


class MessageReader:
    """Reads ``message`` records of every joined room."""

    def __init__(self, client: MatrixClient, connection_id: str, page_size: int = 500) -> None:
        self._client = client
        self._connection_id = connection_id
        self._page_size = page_size

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        position = SyncPosition.parse(cursor)
        response = await self._client.sync(position.next_batch, MESSAGE_FILTER)
        rooms = response.get("rooms", {})
        joined: dict[str, Any] = rooms.get("join", {})
        after = position.advance(_next_batch(response), joined=set(joined), left=set(rooms.get("leave", {})))
        logger.info(
            "matrix.messages.read since=%s rooms=%d mode=%s",
            position.next_batch is not None,
            len(joined),
            window.mode,
        )

        buffer: list[SourceRecord] = []
        for room_id in sorted(joined):
            # A room new to this account is read down to the start of the window.
            since = position.next_batch if position.knows(room_id) else None
            timeline = joined[room_id].get("timeline", {})
            async for records in self._room(room_id, timeline, since, window.history_start):
                buffer.extend(records)
                while len(buffer) >= self._page_size:
                    yield Page(records=buffer[: self._page_size], cursor=cursor)
                    buffer = buffer[self._page_size :]
        yield Page(records=buffer, cursor=after.dump(), complete=window.mode == "full")

    async def _room(
        self, room_id: str, timeline: Mapping[str, Any], since: str | None, history_start: datetime
    ) -> AsyncIterator[list[SourceRecord]]:
        """Yield the room's records newest first; ``since`` ``None`` reads down to ``history_start``."""
        room = RoomPass(self._connection_id, room_id)
        events = [event for event in reversed(timeline.get("events", [])) if isinstance(event, dict)]
        window_ended = since is None and _reaches_before(events, history_start)
        yield room.consume(_inside(events, since, history_start))

        token = timeline.get("prev_batch") if timeline.get("limited") else None
        requests = 0
        while isinstance(token, str) and not window_ended:
            requests += 1
            if requests > MAX_BACKFILL_REQUESTS:
                raise SourceDataError(
                    f"back-filling room {room_id} needed more than {MAX_BACKFILL_REQUESTS} requests "
                    "to /messages; the read stops so that no message is skipped silently"
                )
            answer = await self._client.messages(
                room_id, from_token=token, to_token=since, limit=BACKFILL_LIMIT, event_filter=BACKFILL_FILTER
            )
            chunk = [event for event in answer.get("chunk", []) if isinstance(event, dict)]
            window_ended = since is None and _reaches_before(chunk, history_start)
            yield room.consume(_inside(chunk, since, history_start))
            # An empty chunk does not prove the end; only a missing (or unchanged) ``end`` does.
            end = answer.get("end")
            token = end if isinstance(end, str) and end != token else None
        if requests:
            logger.info("matrix.messages.backfilled room_id=%s requests=%d", room_id, requests)

        yield await self._fetch_pending(room)

    async def _fetch_pending(self, room: RoomPass) -> list[SourceRecord]:
        records = []
        for event_id in room.pending():
            try:
                event = await self._client.event(room.room_id, event_id)
            except (NotFound, PermissionDenied) as exc:
                logger.warning(
                    "matrix.messages.target_missing room_id=%s event_id=%s error=%s",
                    room.room_id,
                    event_id,
                    exc,
                )
                continue
            if event.get("type") in MESSAGE_TYPES and replaced_event_id(event) is None:
                records.append(room.map(event))
        return records


def _next_batch(response: Mapping[str, Any]) -> str:
    value = response.get("next_batch")
    if not isinstance(value, str) or not value:
        raise SourceDataError("/sync returned no next_batch")
    return value


def _reaches_before(events: list[dict[str, Any]], history_start: datetime) -> bool:
    """Return whether events, newest first, reach back past the start of the window."""
    oldest = event_time(events[-1]) if events else None
    return oldest is not None and oldest < history_start


def _inside(events: list[dict[str, Any]], since: str | None, history_start: datetime) -> list[dict[str, Any]]:
    """Drop events older than the window on a first or full read; an incremental read keeps all."""
    if since is not None:
        return events
    return [event for event in events if (event_time(event) or history_start) >= history_start]
