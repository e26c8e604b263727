"""Database engines and transactions for SQLite (embedded) and PostgreSQL (scale-out).

SQLite allows one writer at a time, so writing transactions go through their
own engine whose transactions start with ``BEGIN IMMEDIATE`` and whose pool
holds one connection: writers queue in the process instead of failing with
"database is locked" half-way. Readers use a second engine with deferred
transactions, which WAL mode lets run beside the writer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from interlink.model.types import format_utc

logger = logging.getLogger(__name__)

_SQLITE_BUSY_TIMEOUT_MS = 30_000
# The writer's page cache, in KiB, and its WAL size before a checkpoint, in pages. Record ids
# are hashes, so every page write touches leaves all over the ``records.id`` index. In
# plain sqlite3 inserts of 100,000 records in 1000-record transactions (SQLite 3.40, 2
# cores), these cut the write cost from about 22 to about 16 µs per record. SQLite's
# defaults are 2000 KiB and 1000 pages.
_SQLITE_WRITER_CACHE_KIB = 16_384
_SQLITE_WRITER_AUTOCHECKPOINT_PAGES = 10_000


def _storage_default(value: Any) -> str:
    # Raw source records may carry Decimal and datetime values: they are stored
    # as their exact decimal text and as RFC 3339 times, so no precision is lost.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return format_utc(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_STORAGE_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def storage_json(value: Any) -> str:
    """Serialize a value for a JSON column: compact, keys in their given order, UTF-8 text unescaped."""
    try:
        return orjson.dumps(value, default=_storage_default, option=_STORAGE_OPTIONS).decode()
    except orjson.JSONEncodeError:
        # orjson rejects integers outside the 64-bit range, which the standard library writes.
        return json.dumps(value, default=_storage_default, ensure_ascii=False, separators=(",", ":"))


def normalize_url(url: str) -> str:
    """Choose the async driver for a plain ``sqlite://`` or ``postgresql://`` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """The store's engines, with ``read()`` and ``write()`` transactions."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = make_url(self.url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            self._writer = _sqlite_engine(self.url, immediate=True, pool_size=1)
            self._reader = _sqlite_engine(self.url, immediate=False, pool_size=4)
        else:
            self._writer = create_async_engine(
                self.url, pool_size=10, max_overflow=10, pool_pre_ping=True, json_serializer=storage_json
            )
            self._reader = self._writer

    @property
    def engine(self) -> AsyncEngine:
        return self._writer

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """Open a writing transaction, committed when the block exits without an error."""
        async with self._writer.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """Open a read-only transaction: one consistent snapshot for the whole block."""
        async with self._reader.connect() as connection, connection.begin():
            yield connection

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, json_serializer=storage_json)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Take transaction control from the driver so the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        if immediate:
            cursor.execute(f"PRAGMA cache_size=-{_SQLITE_WRITER_CACHE_KIB}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={_SQLITE_WRITER_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
