"""Sync schedules: when each (connection, entity) is next due, and claiming the due ones.

Claiming is safe in several processes at once. On PostgreSQL the claim locks
the due rows with ``FOR UPDATE SKIP LOCKED``, so concurrent schedulers split
them. SQLite runs one writing transaction at a time (``BEGIN IMMEDIATE``), so
there the claim is a conditional ``UPDATE ... RETURNING``, and the next writer
reads the rows only after they were advanced. Either way the caller queues the runs
and advances the rows in the claiming transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.model import new_id
from interlink.store.tables import connections, sync_runs, sync_schedules

# Connections whose schedules run. A connection in any other status is paused.
SCHEDULED_STATUSES = ("active", "degraded")


@dataclass(frozen=True)
class Schedule:
    connection_id: str
    entity: str
    next_incremental_at: datetime
    next_full_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class ClaimedSchedule:
    """A due schedule with what deciding its run needs from the connection."""

    schedule: Schedule
    integration: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class ActiveRun:
    """A run that is queued or running."""

    id: str
    connection_id: str
    entity: str
    status: str
    mode: str


@dataclass(frozen=True)
class RunRequest:
    """A run the scheduler asks for: its (connection, entity) and mode."""

    connection_id: str
    entity: str
    mode: str


@dataclass(frozen=True)
class ScheduleUpdate:
    connection_id: str
    entity: str
    next_incremental_at: datetime
    next_full_at: datetime | None


def _schedule(mapping: Any) -> Schedule:
    return Schedule(**{name: mapping[name] for name in Schedule.__dataclass_fields__})


async def list_schedules(connection: AsyncConnection, connection_id: str) -> Sequence[Schedule]:
    query = (
        select(sync_schedules)
        .where(sync_schedules.c.connection_id == connection_id)
        .order_by(sync_schedules.c.entity)
    )
    return [_schedule(row) for row in (await connection.execute(query)).mappings()]


async def schedule_keys(connection: AsyncConnection, connection_ids: Collection[str]) -> set[tuple[str, str]]:
    """Return the (connection, entity) pairs that have a schedule, among these connections."""
    if not connection_ids:
        return set()
    query = select(sync_schedules.c.connection_id, sync_schedules.c.entity).where(
        sync_schedules.c.connection_id.in_(sorted(connection_ids))
    )
    return {(row.connection_id, row.entity) for row in await connection.execute(query)}


async def insert_schedule(
    connection: AsyncConnection,
    *,
    connection_id: str,
    entity: str,
    next_incremental_at: datetime,
    next_full_at: datetime | None,
    now: datetime,
) -> None:
    await connection.execute(
        insert(sync_schedules).values(
            connection_id=connection_id,
            entity=entity,
            next_incremental_at=next_incremental_at,
            next_full_at=next_full_at,
            updated_at=now,
        )
    )


async def update_schedules(
    connection: AsyncConnection, updates: Sequence[ScheduleUpdate], *, now: datetime
) -> None:
    """Set the next due times of several schedules in one statement."""
    if not updates:
        return
    statement = (
        update(sync_schedules)
        .where(
            sync_schedules.c.connection_id == bindparam("key_connection_id"),
            sync_schedules.c.entity == bindparam("key_entity"),
        )
        .values(
            next_incremental_at=bindparam(
                "new_incremental_at", type_=sync_schedules.c.next_incremental_at.type
            ),
            next_full_at=bindparam("new_full_at", type_=sync_schedules.c.next_full_at.type),
            updated_at=bindparam("new_updated_at", type_=sync_schedules.c.updated_at.type),
        )
    )
    await connection.execute(
        statement,
        [
            {
                "key_connection_id": item.connection_id,
                "key_entity": item.entity,
                "new_incremental_at": item.next_incremental_at,
                "new_full_at": item.next_full_at,
                "new_updated_at": now,
            }
            for item in updates
        ],
    )


async def delete_schedules(
    connection: AsyncConnection, connection_id: str, entities: Collection[str]
) -> None:
    if not entities:
        return
    await connection.execute(
        delete(sync_schedules).where(
            sync_schedules.c.connection_id == connection_id, sync_schedules.c.entity.in_(list(entities))
        )
    )


async def connections_without_schedules(
    connection: AsyncConnection, *, after_id: str | None, limit: int
) -> Sequence[tuple[str, str, dict[str, Any]]]:
    """Return (id, integration, settings) of connections with no schedule yet, in id order."""
    query = (
        select(connections.c.id, connections.c.integration, connections.c.settings)
        .where(~exists().where(sync_schedules.c.connection_id == connections.c.id))
        .order_by(connections.c.id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(connections.c.id > after_id)
    return [(row.id, row.integration, row.settings) for row in await connection.execute(query)]


async def claim_due_schedules(
    connection: AsyncConnection, *, now: datetime, limit: int
) -> Sequence[ClaimedSchedule]:
    """Claim up to ``limit`` schedules that are due at ``now`` and whose connection is not paused.

    Call it inside a writing transaction. The claimed rows stay claimed until
    that transaction ends, so it must also advance them.
    """
    # The candidates come from an alias, so that SQLAlchemy does not correlate
    # the subquery with the table the UPDATE writes.
    candidate = sync_schedules.alias("candidate")
    candidates = (
        select(candidate.c.connection_id, candidate.c.entity)
        .join(connections, connections.c.id == candidate.c.connection_id)
        .where(
            or_(candidate.c.next_incremental_at <= now, candidate.c.next_full_at <= now),
            connections.c.status.in_(SCHEDULED_STATUSES),
        )
        .order_by(candidate.c.next_incremental_at)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=candidate)
    still_due = or_(sync_schedules.c.next_incremental_at <= now, sync_schedules.c.next_full_at <= now)
    claim = (
        update(sync_schedules)
        .where(tuple_(sync_schedules.c.connection_id, sync_schedules.c.entity).in_(candidates), still_due)
        .values(updated_at=now)
        .returning(*sync_schedules.c)
    )
    claimed = [_schedule(row) for row in (await connection.execute(claim)).mappings()]
    if not claimed:
        return []

    connection_ids = sorted({schedule.connection_id for schedule in claimed})
    query = select(connections.c.id, connections.c.integration, connections.c.settings).where(
        connections.c.id.in_(connection_ids)
    )
    owners = {row.id: row for row in await connection.execute(query)}
    return [
        ClaimedSchedule(
            schedule=schedule,
            integration=owners[schedule.connection_id].integration,
            settings=owners[schedule.connection_id].settings,
        )
        for schedule in claimed
    ]


async def active_runs(connection: AsyncConnection, connection_ids: Collection[str]) -> Sequence[ActiveRun]:
    """Return the queued and running runs of these connections."""
    if not connection_ids:
        return []
    query = select(
        sync_runs.c.id, sync_runs.c.connection_id, sync_runs.c.entity, sync_runs.c.status, sync_runs.c.mode
    ).where(
        sync_runs.c.status.in_(("queued", "running")),
        sync_runs.c.connection_id.in_(sorted(connection_ids)),
    )
    return [
        ActiveRun(
            id=row.id, connection_id=row.connection_id, entity=row.entity, status=row.status, mode=row.mode
        )
        for row in await connection.execute(query)
    ]


async def insert_scheduled_runs(
    connection: AsyncConnection, requests: Sequence[RunRequest], *, now: datetime
) -> tuple[list[ActiveRun], list[RunRequest]]:
    """Queue scheduled runs in one statement, for pairs the caller saw without a queued run.

    This is the batch form of ``interlink.store.runs.queue_run``: one
    statement per batch keeps the scheduler's cost low. Returns the runs
    inserted and the requests whose pair got a queued run from another
    transaction in the meantime (a manual trigger on PostgreSQL), which the
    caller passes to ``queue_run`` one by one.
    """
    if not requests:
        return [], []
    rows = [
        {
            "id": new_id("run"),
            "connection_id": request.connection_id,
            "entity": request.entity,
            "mode": request.mode,
            "trigger": "schedule",
            "status": "queued",
            "queued_at": now,
            "fetched": 0,
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "attempts": 0,
        }
        for request in requests
    ]
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    # Executed with many parameter sets, which SQLAlchemy sends as batched
    # multi-row INSERTs ("insertmanyvalues") from one cached compilation.
    statement = (
        dialect_insert(sync_runs)
        .on_conflict_do_nothing()
        .returning(sync_runs.c.id, sync_runs.c.connection_id, sync_runs.c.entity, sync_runs.c.mode)
    )
    inserted = [
        ActiveRun(
            id=row.id, connection_id=row.connection_id, entity=row.entity, status="queued", mode=row.mode
        )
        for row in await connection.execute(statement, rows)
    ]
    queued_pairs = {(run.connection_id, run.entity) for run in inserted}
    conflicts = [
        request for request in requests if (request.connection_id, request.entity) not in queued_pairs
    ]
    return inserted, conflicts
