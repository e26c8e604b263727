"""Operator API keys, stored only as SHA-256 hashes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.model import new_id
from interlink.store.tables import api_keys


@dataclass(frozen=True)
class ApiKeyRow:
    id: str
    name: str
    key_prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


_COLUMNS = [getattr(api_keys.c, name) for name in ApiKeyRow.__dataclass_fields__]


async def insert_api_key(
    connection: AsyncConnection, *, name: str, key_hash: str, key_prefix: str, expires_at: datetime | None
) -> ApiKeyRow:
    row = ApiKeyRow(
        id=new_id("key"),
        name=name,
        key_prefix=key_prefix,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
        revoked_at=None,
        last_used_at=None,
    )
    await connection.execute(insert(api_keys).values(key_hash=key_hash, **row.__dict__))
    return row


async def list_api_keys(connection: AsyncConnection) -> Sequence[ApiKeyRow]:
    rows = await connection.execute(select(*_COLUMNS).order_by(api_keys.c.created_at))
    return [ApiKeyRow(**row) for row in rows.mappings()]


async def revoke_api_key(connection: AsyncConnection, key_id: str) -> bool:
    result = await connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(api_keys.c.id)
    )
    return result.first() is not None


@dataclass(frozen=True)
class KeyLookup:
    """The outcome of looking up an API key by its hash."""

    key_id: str | None
    expired_at: datetime | None = None


async def find_valid_api_key(connection: AsyncConnection, key_hash: str, now: datetime) -> KeyLookup:
    """Find the unrevoked key with this hash; ``key_id`` is set only if it has not expired."""
    query = select(api_keys.c.id, api_keys.c.expires_at).where(
        api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
    )
    row = (await connection.execute(query)).first()
    if row is None:
        return KeyLookup(key_id=None)
    if row.expires_at is not None and row.expires_at <= now:
        return KeyLookup(key_id=None, expired_at=row.expires_at)
    return KeyLookup(key_id=str(row.id))
