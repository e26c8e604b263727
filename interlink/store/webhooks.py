"""Webhook endpoints, deliveries with their leases, the delivery log, and the fan-out position.

A delivery is the state of sending one event to one endpoint: ``pending``
until it succeeds or its retries run out (``succeeded``, ``failed``). A
worker holds a delivery's lease (owner and expiry) while it sends. Claiming
is a conditional UPDATE, so two workers never send the same attempt. When a
worker dies, its lease expires and the delivery can be claimed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.model import new_id
from interlink.store.events import Event, append_event
from interlink.store.sequence import next_change_seq
from interlink.store.tables import deliveries, delivery_attempts, events, webhook_endpoints, webhook_fanout

ENDPOINT_STATUSES = ("enabled", "disabled")
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
ALL_EVENT_TYPES = "*"


@dataclass(frozen=True)
class EndpointRow:
    id: str
    kind: str
    url: str
    description: str | None
    event_types: list[str]
    connection_id: str | None
    secret: bytes
    previous_secret: bytes | None
    previous_secret_expires_at: datetime | None
    status: str
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    start_seq: int
    created_at: datetime
    updated_at: datetime
    room_id: str | None

    def subscribes_to(self, event_type: str, connection_id: str | None) -> bool:
        """Return whether events of this type and connection are meant for this endpoint."""
        if ALL_EVENT_TYPES not in self.event_types and event_type not in self.event_types:
            return False
        # A Matrix endpoint's connection is the account that posts, so it filters nothing.
        if self.kind == "matrix":
            return True
        return self.connection_id is None or self.connection_id == connection_id


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    event_id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class AttemptRow:
    pk: int
    id: str
    delivery_id: str
    endpoint_id: str
    event_id: str
    attempt: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    succeeded: bool
    next_attempt_at: datetime | None


def _endpoint(mapping: Any) -> EndpointRow:
    values = {name: mapping[name] for name in EndpointRow.__dataclass_fields__}
    values["event_types"] = list(values["event_types"])
    return EndpointRow(**values)


def _delivery(mapping: Any) -> DeliveryRow:
    return DeliveryRow(**{name: mapping[name] for name in DeliveryRow.__dataclass_fields__})


def _attempt(mapping: Any) -> AttemptRow:
    return AttemptRow(**{name: mapping[name] for name in AttemptRow.__dataclass_fields__})


def _event(mapping: Any) -> Event:
    return Event(
        id=mapping["id"],
        type=mapping["type"],
        connection_id=mapping["connection_id"],
        data=mapping["data"],
        created_at=mapping["created_at"],
        seq=mapping["seq"],
        pk=mapping["pk"],
    )


# Endpoints


async def insert_endpoint(
    connection: AsyncConnection,
    *,
    url: str,
    event_types: Sequence[str],
    connection_id: str | None,
    description: str | None,
    secret: bytes,
    now: datetime,
    kind: str = "https",
    room_id: str | None = None,
) -> EndpointRow:
    """Insert an enabled endpoint that receives the events committed after this transaction.

    Taking a change number orders the insert among the writers: an event with
    a higher number commits after this transaction, so a fan-out that reads
    the event can also read the endpoint.
    """
    values: dict[str, Any] = {
        "id": new_id("whe"),
        "kind": kind,
        "room_id": room_id,
        "url": url,
        "description": description,
        "event_types": list(event_types),
        "connection_id": connection_id,
        "secret": secret,
        "previous_secret": None,
        "previous_secret_expires_at": None,
        "status": "enabled",
        "disabled_reason": None,
        "disabled_at": None,
        "failing_since": None,
        "start_seq": await next_change_seq(connection),
        "created_at": now,
        "updated_at": now,
    }
    await connection.execute(insert(webhook_endpoints).values(**values))
    return _endpoint(values)


async def get_endpoint(connection: AsyncConnection, endpoint_id: str) -> EndpointRow | None:
    query = select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    row = (await connection.execute(query)).mappings().first()
    return _endpoint(row) if row else None


async def list_endpoints(
    connection: AsyncConnection,
    *,
    after_id: str | None,
    limit: int,
    connection_id: str | None = None,
) -> Sequence[EndpointRow]:
    """Return endpoints in creation order (ids are time-ordered UUIDv7)."""
    query = select(webhook_endpoints).order_by(webhook_endpoints.c.id).limit(limit)
    if after_id is not None:
        query = query.where(webhook_endpoints.c.id > after_id)
    if connection_id is not None:
        query = query.where(webhook_endpoints.c.connection_id == connection_id)
    return [_endpoint(row) for row in (await connection.execute(query)).mappings()]


async def enabled_endpoints(connection: AsyncConnection, *, kind: str | None = None) -> Sequence[EndpointRow]:
    """Return the enabled endpoints, of every kind unless ``kind`` is given."""
    query = select(webhook_endpoints).where(webhook_endpoints.c.status == "enabled")
    if kind is not None:
        query = query.where(webhook_endpoints.c.kind == kind)
    return [_endpoint(row) for row in (await connection.execute(query)).mappings()]


async def update_endpoint(
    connection: AsyncConnection, endpoint_id: str, *, now: datetime, **values: Any
) -> None:
    await connection.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(updated_at=now, **values)
    )


async def enable_endpoint(connection: AsyncConnection, endpoint_id: str, *, now: datetime) -> bool:
    """Enable a disabled endpoint; return whether its status changed."""
    result = await connection.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.status == "disabled")
        .values(status="enabled", disabled_reason=None, disabled_at=None, failing_since=None, updated_at=now)
        .returning(webhook_endpoints.c.id)
    )
    return result.first() is not None


async def disable_endpoint(
    connection: AsyncConnection, endpoint_id: str, *, reason: str, detail: str, url: str, now: datetime
) -> bool:
    """Disable an enabled endpoint, fail its pending deliveries, and emit ``webhook_endpoint.disabled``.

    Returns whether the status changed. The conditional UPDATE makes the check
    and the change one step, so two workers cannot both emit the event.
    ``url`` goes into the event as given, so the caller passes it redacted.
    """
    result = await connection.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.status == "enabled")
        .values(status="disabled", disabled_reason=reason, disabled_at=now, updated_at=now)
        .returning(webhook_endpoints.c.connection_id)
    )
    row = result.first()
    if row is None:
        return False
    await connection.execute(
        update(deliveries)
        .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == "pending")
        .values(
            status="failed",
            last_error=f"endpoint disabled ({reason})",
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    await append_event(
        connection,
        "webhook_endpoint.disabled",
        {"endpoint_id": endpoint_id, "url": url, "reason": reason, "detail": detail},
        connection_id=row.connection_id,
    )
    return True


async def delete_endpoint(connection: AsyncConnection, endpoint_id: str) -> bool:
    """Delete an endpoint with its deliveries and their log; return whether it existed."""
    # Children are removed explicitly, as for connections: SQLite enforces
    # ON DELETE CASCADE only with foreign keys switched on.
    await connection.execute(delete(delivery_attempts).where(delivery_attempts.c.endpoint_id == endpoint_id))
    await connection.execute(delete(deliveries).where(deliveries.c.endpoint_id == endpoint_id))
    result = await connection.execute(
        delete(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .returning(webhook_endpoints.c.id)
    )
    return result.first() is not None


async def note_endpoint_failure(connection: AsyncConnection, endpoint_id: str, *, now: datetime) -> datetime:
    """Start the endpoint's run of failures unless one is under way; return when it started."""
    await connection.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.failing_since.is_(None))
        .values(failing_since=now)
    )
    value = (
        await connection.execute(
            select(webhook_endpoints.c.failing_since).where(webhook_endpoints.c.id == endpoint_id)
        )
    ).scalar_one_or_none()
    return value if isinstance(value, datetime) else now


async def note_endpoint_success(connection: AsyncConnection, endpoint_id: str) -> None:
    await connection.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.failing_since.is_not(None))
        .values(failing_since=None)
    )


# Events


async def get_event(connection: AsyncConnection, event_id: str) -> Event | None:
    row = (await connection.execute(select(events).where(events.c.id == event_id))).mappings().first()
    return _event(row) if row else None


async def latest_event_position(connection: AsyncConnection) -> tuple[int, int] | None:
    query = select(events.c.seq, events.c.pk).order_by(events.c.seq.desc(), events.c.pk.desc()).limit(1)
    row = (await connection.execute(query)).first()
    return (int(row.seq), int(row.pk)) if row else None


async def event_exists_after(connection: AsyncConnection, position: tuple[int, int]) -> bool:
    seq, pk = position
    query = select(exists().where(or_(events.c.seq > seq, and_(events.c.seq == seq, events.c.pk > pk))))
    return bool((await connection.execute(query)).scalar())


# Fan-out


async def fanout_position(connection: AsyncConnection, *, lock: bool = False) -> tuple[int, int]:
    """Return the outbox position the fan-out has reached.

    With ``lock`` the row stays locked until the transaction ends, so fan-outs
    in several PostgreSQL processes take turns. SQLite writers are serialized
    by ``BEGIN IMMEDIATE`` already.
    """
    query = select(webhook_fanout.c.seq, webhook_fanout.c.pk).where(webhook_fanout.c.id == 1)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await connection.execute(query)).first()
    if row is None:
        await connection.execute(insert(webhook_fanout).values(id=1, seq=0, pk=0))
        return 0, 0
    return int(row.seq), int(row.pk)


async def save_fanout_position(connection: AsyncConnection, position: tuple[int, int]) -> None:
    seq, pk = position
    await connection.execute(update(webhook_fanout).where(webhook_fanout.c.id == 1).values(seq=seq, pk=pk))


async def insert_deliveries(
    connection: AsyncConnection, pairs: Iterable[tuple[str, str]], *, now: datetime
) -> int:
    """Queue a pending delivery per (event id, endpoint id), skipping pairs that exist; return the count."""
    rows = [
        {
            "id": new_id("dlv"),
            "event_id": event_id,
            "endpoint_id": endpoint_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for event_id, endpoint_id in pairs
    ]
    if not rows:
        return 0
    statement: Any
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(deliveries).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(deliveries).on_conflict_do_nothing()
    await connection.execute(statement, rows)
    return len(rows)


# Claiming and finishing


def _due(now: datetime) -> Any:
    return and_(
        deliveries.c.status == "pending",
        deliveries.c.next_attempt_at <= now,
        or_(deliveries.c.lease_expires_at.is_(None), deliveries.c.lease_expires_at < now),
    )


async def due_delivery_exists(connection: AsyncConnection, *, now: datetime) -> bool:
    return bool((await connection.execute(select(exists().where(_due(now))))).scalar())


async def claim_due_deliveries(
    connection: AsyncConnection, *, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[str]:
    """Lease up to ``limit`` due deliveries to ``owner``, oldest due first, and return their ids.

    This is safe in several processes at once. On PostgreSQL the candidate
    rows are locked with ``FOR UPDATE SKIP LOCKED``, so concurrent claimers
    take disjoint sets. On SQLite the writing transaction holds the
    database's write lock. The outer condition repeats the due test, so a row
    that another claimer leased in between is left alone.
    """
    candidates = select(deliveries.c.id).where(_due(now)).order_by(deliveries.c.next_attempt_at).limit(limit)
    if connection.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(deliveries)
        .where(deliveries.c.id.in_(candidates.scalar_subquery()), _due(now))
        .values(lease_owner=owner, lease_expires_at=lease_until)
        .returning(deliveries.c.id)
    )
    return [str(value) for value in (await connection.execute(statement)).scalars()]


async def claim_delivery(
    connection: AsyncConnection, delivery_id: str, *, owner: str, now: datetime, lease_until: datetime
) -> bool:
    """Lease one delivery to ``owner`` if it is due and not leased by a live worker; return whether it was."""
    result = await connection.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, _due(now))
        .values(lease_owner=owner, lease_expires_at=lease_until)
        .returning(deliveries.c.id)
    )
    return result.first() is not None


@dataclass(frozen=True)
class DeliveryJob:
    """A delivery with the event to send and the endpoint to send it to."""

    delivery: DeliveryRow
    event: Event
    endpoint: EndpointRow


def _labelled(table: Any, prefix: str) -> list[Any]:
    return [column.label(f"{prefix}{column.name}") for column in table.columns]


def _unprefixed(row: Any, prefix: str) -> dict[str, Any]:
    return {key.removeprefix(prefix): value for key, value in row.items() if key.startswith(prefix)}


async def load_deliveries(connection: AsyncConnection, delivery_ids: Sequence[str]) -> dict[str, DeliveryJob]:
    """Return the deliveries with their events and endpoints, by id, in one query.

    A delivery whose event or endpoint is gone is left out.
    """
    if not delivery_ids:
        return {}
    query = (
        select(*_labelled(deliveries, "d_"), *_labelled(events, "e_"), *_labelled(webhook_endpoints, "w_"))
        .join(events, events.c.id == deliveries.c.event_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == deliveries.c.endpoint_id)
        .where(deliveries.c.id.in_(list(delivery_ids)))
    )
    jobs: dict[str, DeliveryJob] = {}
    for row in (await connection.execute(query)).mappings():
        delivery = _delivery(_unprefixed(row, "d_"))
        jobs[delivery.id] = DeliveryJob(
            delivery, _event(_unprefixed(row, "e_")), _endpoint(_unprefixed(row, "w_"))
        )
    return jobs


async def load_delivery(connection: AsyncConnection, delivery_id: str) -> DeliveryJob | None:
    """Return a delivery with its event and endpoint, or ``None`` when any of them is gone."""
    return (await load_deliveries(connection, [delivery_id])).get(delivery_id)


@dataclass(frozen=True)
class FinishedAttempt:
    """One HTTP attempt of a delivery and the state it leaves the delivery in."""

    delivery: DeliveryRow
    attempt: int
    attempted_at: datetime
    # The delivery's new status: pending (a retry is scheduled), succeeded or failed.
    status: str
    next_attempt_at: datetime | None
    status_code: int | None
    latency_ms: int
    error: str | None
    succeeded: bool


_FINISH_STATEMENT = (
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("b_id"),
        deliveries.c.lease_owner == bindparam("b_owner"),
        deliveries.c.status == "pending",
    )
    .values(
        status=bindparam("b_status"),
        attempts=deliveries.c.attempts + 1,
        next_attempt_at=bindparam("b_next_attempt_at"),
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
        updated_at=bindparam("b_now"),
        finished_at=bindparam("b_finished_at"),
        lease_owner=None,
        lease_expires_at=None,
    )
)


# NOTE: nothing prunes finished deliveries or the attempt log yet; both grow with every event sent.
async def finish_attempts(
    connection: AsyncConnection, finished: Sequence[FinishedAttempt], *, owner: str, now: datetime
) -> list[bool]:
    """Log every attempt, and store each delivery's new state and release its lease if ``owner`` holds it.

    Returns, per attempt, whether ``owner`` still held the lease. A worker
    whose lease expired and was taken over only adds its attempt to the log.
    The statements are executed once per batch, not once per attempt.
    """
    if not finished:
        return []
    held = select(deliveries.c.id).where(
        deliveries.c.id.in_([item.delivery.id for item in finished]),
        deliveries.c.lease_owner == owner,
        deliveries.c.status == "pending",
    )
    if connection.dialect.name == "postgresql":
        held = held.with_for_update()
    owned = {str(value) for value in (await connection.execute(held)).scalars()}

    await connection.execute(
        insert(delivery_attempts),
        [
            {
                "id": new_id("att"),
                "delivery_id": item.delivery.id,
                "endpoint_id": item.delivery.endpoint_id,
                "event_id": item.delivery.event_id,
                "attempt": item.attempt,
                "attempted_at": item.attempted_at,
                "status_code": item.status_code,
                "latency_ms": item.latency_ms,
                "error": item.error[:300] if item.error else None,
                "succeeded": item.succeeded,
                "next_attempt_at": item.next_attempt_at,
            }
            for item in finished
        ],
    )
    updates = [
        {
            "b_id": item.delivery.id,
            "b_owner": owner,
            "b_status": item.status,
            "b_next_attempt_at": item.next_attempt_at or now,
            "b_status_code": item.status_code,
            "b_error": item.error,
            "b_now": now,
            "b_finished_at": now if item.status != "pending" else None,
        }
        for item in finished
        if item.delivery.id in owned
    ]
    if updates:
        await connection.execute(_FINISH_STATEMENT, updates)
    return [item.delivery.id in owned for item in finished]


async def release_delivery(
    connection: AsyncConnection, delivery_id: str, *, owner: str, status: str, error: str, now: datetime
) -> None:
    """Finish a delivery that was not attempted (its endpoint is disabled, say) and release its lease."""
    await connection.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.lease_owner == owner)
        .values(
            status=status,
            last_error=error,
            updated_at=now,
            finished_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


async def requeue_delivery(
    connection: AsyncConnection, event_id: str, endpoint_id: str, *, now: datetime
) -> DeliveryRow:
    """Make the delivery of an event to an endpoint due now with a fresh retry schedule.

    Creates the delivery when the endpoint never had one for this event. A
    delivery that a worker is sending right now keeps its lease, so the
    attempt in flight finishes first.
    """
    await insert_deliveries(connection, [(event_id, endpoint_id)], now=now)
    await connection.execute(
        update(deliveries)
        .where(deliveries.c.event_id == event_id, deliveries.c.endpoint_id == endpoint_id)
        .values(status="pending", attempts=0, next_attempt_at=now, finished_at=None, updated_at=now)
    )
    query = select(deliveries).where(
        deliveries.c.event_id == event_id, deliveries.c.endpoint_id == endpoint_id
    )
    row = (await connection.execute(query)).mappings().one()
    return _delivery(row)


async def get_delivery(connection: AsyncConnection, delivery_id: str) -> DeliveryRow | None:
    row = (
        (await connection.execute(select(deliveries).where(deliveries.c.id == delivery_id)))
        .mappings()
        .first()
    )
    return _delivery(row) if row else None


async def list_attempts(
    connection: AsyncConnection,
    endpoint_id: str,
    *,
    before_pk: int | None,
    limit: int,
    event_id: str | None = None,
) -> Sequence[AttemptRow]:
    """Return an endpoint's delivery attempts, newest first."""
    query = (
        select(delivery_attempts)
        .where(delivery_attempts.c.endpoint_id == endpoint_id)
        .order_by(delivery_attempts.c.pk.desc())
        .limit(limit)
    )
    if before_pk is not None:
        query = query.where(delivery_attempts.c.pk < before_pk)
    if event_id is not None:
        query = query.where(delivery_attempts.c.event_id == event_id)
    return [_attempt(row) for row in (await connection.execute(query)).mappings()]


async def event_types_of(connection: AsyncConnection, event_ids: Iterable[str]) -> dict[str, str]:
    ids = set(event_ids)
    if not ids:
        return {}
    rows = await connection.execute(select(events.c.id, events.c.type).where(events.c.id.in_(ids)))
    return {row.id: row.type for row in rows}
