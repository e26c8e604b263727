"""Sync runs, their leases, and the per-(connection, entity) sync state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.model import new_id
from interlink.store.tables import sync_runs, sync_states

RUN_STATUSES = ("queued", "running", "succeeded", "failed")
COUNT_NAMES = ("fetched", "created", "updated", "unchanged", "deleted")


@dataclass(frozen=True)
class RunRow:
    id: str
    connection_id: str
    entity: str
    mode: str
    trigger: str
    status: str
    fetched: int
    created: int
    updated: int
    unchanged: int
    deleted: int
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    error_code: str | None
    full_cursor: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    attempts: int

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNT_NAMES}


def _row(mapping: Any) -> RunRow:
    return RunRow(**{name: mapping[name] for name in RunRow.__dataclass_fields__})


async def get_run(connection: AsyncConnection, run_id: str) -> RunRow | None:
    row = (await connection.execute(select(sync_runs).where(sync_runs.c.id == run_id))).mappings().first()
    return _row(row) if row else None


async def queue_run(
    connection: AsyncConnection,
    *,
    connection_id: str,
    entity: str,
    mode: str,
    trigger: str,
    now: datetime,
) -> tuple[RunRow, bool]:
    """Queue a run unless one already waits for this (connection, entity).

    Returns the waiting run and whether it is new. A full request turns a
    waiting incremental run into a full one, since a full pass covers it.
    """
    waiting = await _queued_run(connection, connection_id, entity)
    if waiting is None:
        values = {
            "id": new_id("run"),
            "connection_id": connection_id,
            "entity": entity,
            "mode": mode,
            "trigger": trigger,
            "status": "queued",
            "queued_at": now,
            "fetched": 0,
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "attempts": 0,
        }
        try:
            async with connection.begin_nested():
                await connection.execute(insert(sync_runs).values(**values))
        except IntegrityError:
            # Another process queued one between our read and our insert.
            waiting = await _queued_run(connection, connection_id, entity)
            assert waiting is not None
        else:
            created = await get_run(connection, str(values["id"]))
            assert created is not None
            return created, True
    if mode == "full" and waiting.mode != "full":
        await connection.execute(update(sync_runs).where(sync_runs.c.id == waiting.id).values(mode="full"))
        waiting = await get_run(connection, waiting.id)
        assert waiting is not None
    return waiting, False


async def _queued_run(connection: AsyncConnection, connection_id: str, entity: str) -> RunRow | None:
    query = select(sync_runs).where(
        sync_runs.c.connection_id == connection_id,
        sync_runs.c.entity == entity,
        sync_runs.c.status == "queued",
    )
    row = (await connection.execute(query)).mappings().first()
    return _row(row) if row else None


async def claim_run(
    connection: AsyncConnection, run_id: str, *, owner: str, now: datetime, lease_until: datetime
) -> RunRow | None:
    """Take the lease on a run that is queued, or running under an expired lease.

    Returns ``None`` when the run is finished, leased by another worker, or
    waiting behind another run of the same (connection, entity).
    """
    other = sync_runs.alias("other")
    other_running = exists().where(
        other.c.connection_id == sync_runs.c.connection_id,
        other.c.entity == sync_runs.c.entity,
        other.c.status == "running",
        other.c.id != sync_runs.c.id,
    )
    claimable = or_(
        and_(sync_runs.c.status == "queued", ~other_running),
        and_(sync_runs.c.status == "running", sync_runs.c.lease_expires_at < now),
    )
    run = await get_run(connection, run_id)
    if run is None:
        return None
    statement = (
        update(sync_runs)
        .where(sync_runs.c.id == run_id, claimable)
        .values(
            status="running",
            lease_owner=owner,
            lease_expires_at=lease_until,
            started_at=run.started_at or now,
            attempts=sync_runs.c.attempts + 1,
        )
        .returning(sync_runs.c.id)
    )
    try:
        async with connection.begin_nested():
            claimed = (await connection.execute(statement)).first()
    except IntegrityError:
        return None  # another run of the pair started between the check and the update
    if claimed is None:
        return None
    return await get_run(connection, run_id)


async def extend_lease(
    connection: AsyncConnection,
    run_id: str,
    *,
    owner: str,
    lease_until: datetime,
    counts: dict[str, int] | None = None,
    full_cursor: str | None = None,
) -> bool:
    """Renew the lease (and save progress) if ``owner`` still holds it; return whether it does."""
    values: dict[str, Any] = {"lease_expires_at": lease_until}
    if counts is not None:
        values.update(counts)
    if full_cursor is not None:
        values["full_cursor"] = full_cursor
    result = await connection.execute(
        update(sync_runs)
        .where(sync_runs.c.id == run_id, sync_runs.c.lease_owner == owner, sync_runs.c.status == "running")
        .values(**values)
        .returning(sync_runs.c.id)
    )
    return result.first() is not None


async def finish_run(
    connection: AsyncConnection,
    run_id: str,
    *,
    owner: str,
    status: str,
    now: datetime,
    counts: dict[str, int],
    error: str | None = None,
    error_code: str | None = None,
) -> bool:
    result = await connection.execute(
        update(sync_runs)
        .where(sync_runs.c.id == run_id, sync_runs.c.lease_owner == owner, sync_runs.c.status == "running")
        .values(
            status=status,
            finished_at=now,
            error=error,
            error_code=error_code,
            lease_owner=None,
            lease_expires_at=None,
            **counts,
        )
        .returning(sync_runs.c.id)
    )
    return result.first() is not None


async def fail_queued_run(
    connection: AsyncConnection, run_id: str, *, now: datetime, error: str, error_code: str
) -> None:
    await connection.execute(
        update(sync_runs)
        .where(sync_runs.c.id == run_id, sync_runs.c.status == "queued")
        .values(status="failed", finished_at=now, error=error, error_code=error_code)
    )


async def list_runs(
    connection: AsyncConnection, connection_id: str, *, before_id: str | None, limit: int
) -> Sequence[RunRow]:
    """Return a connection's runs, newest first (run ids are time-ordered UUIDv7)."""
    query = (
        select(sync_runs)
        .where(sync_runs.c.connection_id == connection_id)
        .order_by(sync_runs.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(sync_runs.c.id < before_id)
    return [_row(row) for row in (await connection.execute(query)).mappings()]


async def runs_to_dispatch(connection: AsyncConnection, *, now: datetime, limit: int) -> Sequence[str]:
    """Return runs that need a worker: queued ones, and running ones whose lease expired."""
    query = (
        select(sync_runs.c.id)
        .where(
            or_(
                sync_runs.c.status == "queued",
                and_(sync_runs.c.status == "running", sync_runs.c.lease_expires_at < now),
            )
        )
        .order_by(sync_runs.c.queued_at)
        .limit(limit)
    )
    return [str(value) for value in (await connection.execute(query)).scalars()]


async def waiting_run(connection: AsyncConnection, connection_id: str, entity: str) -> str | None:
    run = await _queued_run(connection, connection_id, entity)
    return run.id if run else None


@dataclass(frozen=True)
class SyncState:
    connection_id: str
    entity: str
    cursor: str | None
    last_success_at: datetime | None
    last_full_success_at: datetime | None


async def get_sync_state(connection: AsyncConnection, connection_id: str, entity: str) -> SyncState | None:
    query = select(sync_states).where(
        sync_states.c.connection_id == connection_id, sync_states.c.entity == entity
    )
    row = (await connection.execute(query)).mappings().first()
    if row is None:
        return None
    return SyncState(
        connection_id=row["connection_id"],
        entity=row["entity"],
        cursor=row["cursor"],
        last_success_at=row["last_success_at"],
        last_full_success_at=row["last_full_success_at"],
    )


async def list_sync_states(connection: AsyncConnection, connection_id: str) -> Sequence[SyncState]:
    query = (
        select(sync_states).where(sync_states.c.connection_id == connection_id).order_by(sync_states.c.entity)
    )
    return [
        SyncState(
            connection_id=row["connection_id"],
            entity=row["entity"],
            cursor=row["cursor"],
            last_success_at=row["last_success_at"],
            last_full_success_at=row["last_full_success_at"],
        )
        for row in (await connection.execute(query)).mappings()
    ]


async def save_sync_state(
    connection: AsyncConnection,
    connection_id: str,
    entity: str,
    *,
    now: datetime,
    cursor: str | None = None,
    succeeded: bool = False,
    full: bool = False,
) -> None:
    """Store the cursor (and, when a run succeeded, its time) for a (connection, entity)."""
    values: dict[str, Any] = {"updated_at": now}
    if cursor is not None:
        values["cursor"] = cursor
    if succeeded:
        values["last_success_at"] = now
        if full:
            values["last_full_success_at"] = now
    result = await connection.execute(
        update(sync_states)
        .where(sync_states.c.connection_id == connection_id, sync_states.c.entity == entity)
        .values(**values)
        .returning(sync_states.c.entity)
    )
    if result.first() is None:
        await connection.execute(
            insert(sync_states).values(connection_id=connection_id, entity=entity, **values)
        )
