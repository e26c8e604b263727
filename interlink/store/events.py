"""The event outbox: events written in the same transaction as the change they describe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.model import new_id
from interlink.store.sequence import next_change_seq
from interlink.store.tables import events

EVENT_TYPES = (
    "connection.created",
    "connection.status_changed",
    "connection.reauthorization_required",
    "connection.deleted",
    "sync.started",
    "sync.completed",
    "sync.failed",
    "records.changed",
    "webhook_endpoint.disabled",
)


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    connection_id: str | None
    data: dict[str, Any]
    created_at: datetime
    seq: int
    pk: int


async def append_event(
    connection: AsyncConnection,
    event_type: str,
    data: Mapping[str, Any],
    *,
    connection_id: str | None = None,
    seq: int | None = None,
) -> str:
    """Write one event into the outbox inside the caller's transaction and return its id.

    ``seq`` is the transaction's change number when the caller already took one.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known types: {', '.join(EVENT_TYPES)}")
    event_id = new_id("evt")
    await connection.execute(
        insert(events).values(
            id=event_id,
            seq=seq if seq is not None else await next_change_seq(connection),
            type=event_type,
            connection_id=connection_id,
            data=dict(data),
            created_at=datetime.now(UTC),
        )
    )
    return event_id


async def list_events(
    connection: AsyncConnection,
    *,
    after: tuple[int, int] | None,
    limit: int,
    event_type: str | None = None,
    connection_id: str | None = None,
) -> Sequence[Event]:
    """Return events in commit order, after the (seq, pk) position ``after``."""
    query = select(events).order_by(events.c.seq, events.c.pk).limit(limit)
    if after is not None:
        seq, pk = after
        query = query.where(or_(events.c.seq > seq, and_(events.c.seq == seq, events.c.pk > pk)))
    if event_type is not None:
        query = query.where(events.c.type == event_type)
    if connection_id is not None:
        query = query.where(events.c.connection_id == connection_id)
    rows = (await connection.execute(query)).mappings().all()
    return [
        Event(
            id=row["id"],
            type=row["type"],
            connection_id=row["connection_id"],
            data=row["data"],
            created_at=row["created_at"],
            seq=row["seq"],
            pk=row["pk"],
        )
        for row in rows
    ]
