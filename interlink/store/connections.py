"""Connections, their tokens and their status transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.model import new_id
from interlink.store.events import append_event
from interlink.store.tables import (
    connection_tokens,
    connections,
    records,
    sync_run_seen,
    sync_runs,
    sync_states,
)

STATUSES = ("active", "degraded", "reauthorization_required", "disabled")


@dataclass(frozen=True)
class ConnectionRow:
    id: str
    integration: str
    auth_scheme: str
    end_user_id: str
    end_user_name: str | None
    end_user_email: str | None
    credentials: bytes
    status: str
    status_reason: str | None
    status_detail: str | None
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _row(mapping: Any) -> ConnectionRow:
    return ConnectionRow(**{name: mapping[name] for name in ConnectionRow.__dataclass_fields__})


async def insert_connection(
    connection: AsyncConnection,
    *,
    integration: str,
    auth_scheme: str,
    end_user_id: str,
    end_user_name: str | None,
    end_user_email: str | None,
    credentials: bytes,
    settings: dict[str, Any],
) -> ConnectionRow:
    now = datetime.now(UTC)
    connection_id = new_id("con")
    values: dict[str, Any] = {
        "id": connection_id,
        "integration": integration,
        "auth_scheme": auth_scheme,
        "end_user_id": end_user_id,
        "end_user_name": end_user_name,
        "end_user_email": end_user_email,
        "credentials": credentials,
        "status": "active",
        "status_reason": None,
        "status_detail": None,
        "settings": settings,
        "created_at": now,
        "updated_at": now,
    }
    await connection.execute(insert(connections).values(**values))
    await append_event(
        connection,
        "connection.created",
        {"connection_id": connection_id, "integration": integration, "end_user_id": end_user_id},
        connection_id=connection_id,
    )
    return _row(values)


async def get_connection(connection: AsyncConnection, connection_id: str) -> ConnectionRow | None:
    row = (
        (await connection.execute(select(connections).where(connections.c.id == connection_id)))
        .mappings()
        .first()
    )
    return _row(row) if row else None


async def list_connections(
    connection: AsyncConnection,
    *,
    after_id: str | None,
    limit: int,
    end_user_id: str | None = None,
    only_id: str | None = None,
) -> Sequence[ConnectionRow]:
    query = select(connections).order_by(connections.c.id).limit(limit)
    if after_id is not None:
        query = query.where(connections.c.id > after_id)
    if end_user_id is not None:
        query = query.where(connections.c.end_user_id == end_user_id)
    if only_id is not None:
        query = query.where(connections.c.id == only_id)
    return [_row(row) for row in (await connection.execute(query)).mappings()]


async def update_connection(connection: AsyncConnection, connection_id: str, **values: Any) -> None:
    values["updated_at"] = datetime.now(UTC)
    await connection.execute(update(connections).where(connections.c.id == connection_id).values(**values))


async def delete_connection(connection: AsyncConnection, connection_id: str) -> bool:
    """Delete a connection with its records, runs, cursors and tokens."""
    row = await get_connection(connection, connection_id)
    if row is None:
        return False
    # Children are removed explicitly: SQLite enforces ON DELETE CASCADE only
    # with foreign keys switched on, and a PostgreSQL cascade hides the cost.
    run_ids = select(sync_runs.c.id).where(sync_runs.c.connection_id == connection_id)
    await connection.execute(delete(sync_run_seen).where(sync_run_seen.c.run_id.in_(run_ids)))
    for table in (records, sync_runs, sync_states, connection_tokens):
        await connection.execute(delete(table).where(table.c.connection_id == connection_id))
    await connection.execute(delete(connections).where(connections.c.id == connection_id))
    await append_event(
        connection,
        "connection.deleted",
        {"connection_id": connection_id, "integration": row.integration},
        connection_id=connection_id,
    )
    return True


async def transition_status(
    connection: AsyncConnection,
    connection_id: str,
    status: str,
    *,
    reason: str | None = None,
    detail: str | None = None,
) -> bool:
    """Move a connection to ``status`` and emit its events, once per transition.

    Returns whether the status changed. A repeated failure that leaves the
    status as it was writes no event, so subscribers hear of each transition
    exactly once, never once per failed attempt.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown connection status {status!r}; valid: {', '.join(STATUSES)}")
    # The conditional UPDATE makes the check and the change one step, so two
    # workers failing at once cannot both emit the transition.
    result = await connection.execute(
        update(connections)
        .where(connections.c.id == connection_id, connections.c.status != status)
        .values(status=status, status_reason=reason, status_detail=detail, updated_at=datetime.now(UTC))
        .returning(connections.c.integration)
    )
    if result.first() is None:
        if status != "active":
            await connection.execute(
                update(connections)
                .where(connections.c.id == connection_id)
                .values(status_reason=reason, status_detail=detail)
            )
        return False
    data = {"connection_id": connection_id, "status": status, "status_reason": reason, "detail": detail}
    await append_event(connection, "connection.status_changed", data, connection_id=connection_id)
    if status == "reauthorization_required":
        await append_event(
            connection, "connection.reauthorization_required", data, connection_id=connection_id
        )
    return True


async def issue_connection_token(connection: AsyncConnection, connection_id: str, token_hash: str) -> None:
    """Store a new token hash for the connection and revoke every older token."""
    now = datetime.now(UTC)
    await connection.execute(
        update(connection_tokens)
        .where(connection_tokens.c.connection_id == connection_id, connection_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await connection.execute(
        insert(connection_tokens).values(
            id=new_id("tok"), connection_id=connection_id, token_hash=token_hash, created_at=now
        )
    )


async def connection_for_token(connection: AsyncConnection, token_hash: str) -> str | None:
    query = select(connection_tokens.c.connection_id).where(
        connection_tokens.c.token_hash == token_hash, connection_tokens.c.revoked_at.is_(None)
    )
    value = (await connection.execute(query)).scalar_one_or_none()
    return str(value) if value is not None else None
