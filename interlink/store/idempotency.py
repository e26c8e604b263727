"""Idempotency keys of API writes: which record a (connection, key) pair produced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.store.tables import idempotency_keys


@dataclass(frozen=True)
class IdempotencyKeyRow:
    connection_id: str
    key: str
    request_hash: str
    record_id: str
    created_at: datetime


async def get_idempotency_key(
    connection: AsyncConnection, connection_id: str, key: str
) -> IdempotencyKeyRow | None:
    query = select(idempotency_keys).where(
        idempotency_keys.c.connection_id == connection_id, idempotency_keys.c.key == key
    )
    row = (await connection.execute(query)).mappings().first()
    if row is None:
        return None
    return IdempotencyKeyRow(**{name: row[name] for name in IdempotencyKeyRow.__dataclass_fields__})


async def insert_idempotency_key(connection: AsyncConnection, row: IdempotencyKeyRow) -> bool:
    """Store a key with its result; return ``False`` when a concurrent write stored the key first."""
    statement: Any
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(idempotency_keys).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(idempotency_keys).on_conflict_do_nothing()
    result = await connection.execute(statement.values(**row.__dict__))
    return bool(result.rowcount)
