"""Connection health state: the last check of each connection and claiming the due checks.

Claiming is safe in several processes at once, as for sync schedules. On
PostgreSQL the claim locks the due rows with ``FOR UPDATE SKIP LOCKED``, so
concurrent monitors split them. SQLite runs one writing transaction at a
time (``BEGIN IMMEDIATE``), so there the claim is a conditional
``UPDATE ... RETURNING``. Either way the claim moves ``next_check_at`` to the
end of a claim period, so a check whose process died is due again after it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.store.tables import connection_health, connections, sync_states

# Connections whose health is checked. Disabled connections are not checked.
# Connections that need reauthorization are not checked either, because only
# reconnecting clears that status, and some sources lock an account after
# repeated calls with rejected credentials.
CHECKED_STATUSES = ("active", "degraded")


@dataclass(frozen=True)
class HealthRow:
    """One connection's health state as stored."""

    connection_id: str
    next_check_at: datetime
    last_check_at: datetime | None
    last_check_ok: bool | None
    consecutive_failures: int
    failing_since: datetime | None
    last_error_code: str | None
    last_error: str | None
    last_error_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class ClaimedCheck:
    """A due check with what running it needs from the connection."""

    health: HealthRow
    integration: str
    auth_scheme: str
    credentials: bytes


def _health(mapping: Any) -> HealthRow:
    return HealthRow(**{name: mapping[name] for name in HealthRow.__dataclass_fields__})


async def get_health(connection: AsyncConnection, connection_id: str) -> HealthRow | None:
    query = select(connection_health).where(connection_health.c.connection_id == connection_id)
    row = (await connection.execute(query)).mappings().first()
    return _health(row) if row else None


async def connections_without_health(connection: AsyncConnection, *, limit: int) -> list[str]:
    """Return the ids of up to ``limit`` connections that have no health row yet."""
    query = (
        select(connections.c.id)
        .where(~exists().where(connection_health.c.connection_id == connections.c.id))
        .order_by(connections.c.id)
        .limit(limit)
    )
    return [str(row.id) for row in await connection.execute(query)]


async def insert_health_rows(
    connection: AsyncConnection, first_checks: Sequence[tuple[str, datetime]], *, now: datetime
) -> None:
    """Create health rows for (connection id, first check time) pairs; rows that exist are kept."""
    if not first_checks:
        return
    rows = [
        {
            "connection_id": connection_id,
            "next_check_at": next_check_at,
            "consecutive_failures": 0,
            "updated_at": now,
        }
        for connection_id, next_check_at in first_checks
    ]
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    await connection.execute(dialect_insert(connection_health).on_conflict_do_nothing(), rows)


async def claim_due_checks(
    connection: AsyncConnection, *, now: datetime, claim_until: datetime, limit: int
) -> list[ClaimedCheck]:
    """Claim up to ``limit`` checks that are due at ``now`` for connections in a checked status.

    The claimed rows get ``next_check_at = claim_until``; the caller sets the
    real next check time when it records the result.
    """
    # The candidates come from an alias, so that SQLAlchemy does not correlate
    # the subquery with the table the UPDATE writes.
    candidate = connection_health.alias("candidate")
    candidates = (
        select(candidate.c.connection_id)
        .join(connections, connections.c.id == candidate.c.connection_id)
        .where(candidate.c.next_check_at <= now, connections.c.status.in_(CHECKED_STATUSES))
        .order_by(candidate.c.next_check_at)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=candidate)
    claim = (
        update(connection_health)
        .where(
            connection_health.c.connection_id.in_(candidates),
            connection_health.c.next_check_at <= now,
        )
        .values(next_check_at=claim_until, updated_at=now)
        .returning(*connection_health.c)
    )
    claimed = [_health(row) for row in (await connection.execute(claim)).mappings()]
    if not claimed:
        return []

    query = select(
        connections.c.id, connections.c.integration, connections.c.auth_scheme, connections.c.credentials
    ).where(connections.c.id.in_(sorted(row.connection_id for row in claimed)))
    owners = {row.id: row for row in await connection.execute(query)}
    return [
        ClaimedCheck(
            health=row,
            integration=owners[row.connection_id].integration,
            auth_scheme=owners[row.connection_id].auth_scheme,
            credentials=owners[row.connection_id].credentials,
        )
        for row in claimed
    ]


async def record_check(
    connection: AsyncConnection,
    connection_id: str,
    *,
    now: datetime,
    ok: bool,
    error_code: str | None,
    error: str | None,
    next_check_at: datetime,
) -> HealthRow | None:
    """Store a check's result and the next check time; return the updated row, or ``None`` if gone.

    The failure count and the start of the failing period are computed in the
    statement itself, so they stay right whichever process records the result.
    """
    values: dict[str, Any] = {
        "last_check_at": now,
        "last_check_ok": ok,
        "next_check_at": next_check_at,
        "updated_at": now,
    }
    if ok:
        values.update(consecutive_failures=0, failing_since=None)
    else:
        values.update(
            consecutive_failures=connection_health.c.consecutive_failures + 1,
            failing_since=func.coalesce(connection_health.c.failing_since, now),
            last_error_code=error_code,
            last_error=error,
            last_error_at=now,
        )
    result = await connection.execute(
        update(connection_health)
        .where(connection_health.c.connection_id == connection_id)
        .values(**values)
        .returning(*connection_health.c)
    )
    row = result.mappings().first()
    return _health(row) if row else None


async def reschedule_check(
    connection: AsyncConnection,
    connection_id: str,
    *,
    now: datetime,
    next_check_at: datetime,
    clear_failures: bool,
) -> None:
    """Move a claimed check to ``next_check_at`` without a result; optionally end the failing period."""
    values: dict[str, Any] = {"next_check_at": next_check_at, "updated_at": now}
    if clear_failures:
        values.update(consecutive_failures=0, failing_since=None)
    await connection.execute(
        update(connection_health).where(connection_health.c.connection_id == connection_id).values(**values)
    )


async def last_sync_successes(
    connection: AsyncConnection, connection_ids: Collection[str]
) -> dict[str, datetime]:
    """Return, per connection, the time its most recent successful sync run finished."""
    if not connection_ids:
        return {}
    query = (
        select(sync_states.c.connection_id, func.max(sync_states.c.last_success_at).label("last"))
        .where(sync_states.c.connection_id.in_(sorted(connection_ids)))
        .group_by(sync_states.c.connection_id)
    )
    return {row.connection_id: row.last for row in await connection.execute(query) if row.last is not None}


async def lock_connection_status(connection: AsyncConnection, connection_id: str) -> str | None:
    """Return the connection's status, locked until the transaction ends (on PostgreSQL)."""
    query = select(connections.c.status).where(connections.c.id == connection_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    value = (await connection.execute(query)).scalar_one_or_none()
    return str(value) if value is not None else None
