"""Database engines and transactions for SQLite (embedded) and PostgreSQL (scale-out).

SQLite allows one writer at a time, so writing transactions go through their
own engine whose transactions start with ``BEGIN IMMEDIATE`` and whose pool
holds one connection: writers queue in the process instead of failing with
"database is locked" half-way. Readers use a second engine with deferred
transactions, which WAL mode lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
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
# WalCheckpointer copies the WAL after commits, so the writer's own checkpoint at
# _SQLITE_WRITER_AUTOCHECKPOINT_PAGES finds most of it copied already.


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
        self.checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            self._writer = _sqlite_engine(self.url, immediate=True, pool_size=1)
            self._reader = _sqlite_engine(self.url, immediate=False, pool_size=4)
            path = make_url(self.url).database
            if path and path != ":memory:" and not path.startswith("file:"):
                self.checkpointer = WalCheckpointer(path)
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
        if self.checkpointer is not None:
            self.checkpointer.committed()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """Open a read-only transaction: one consistent snapshot for the whole block."""
        async with self._reader.connect() as connection, connection.begin():
            yield connection

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            await self.checkpointer.wait()
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


class WalCheckpointer:
    """A worker that checkpoints an SQLite database's write-ahead log after commits.

    SQLite checkpoints inside the commit that grows the log past
    ``wal_autocheckpoint`` pages. That commit copies the log into the
    database file and syncs it while its writer, and the sync run behind
    it, waits: 100 to 200 ms every eight or so pages of 1,000 records in the
    engine benchmark. Here a PASSIVE checkpoint follows commits, on a
    connection of its own in a worker thread, and writers go on committing
    meanwhile. Commits made while one runs share the next one. A PASSIVE
    checkpoint copies as many frames as it can without waiting for readers
    or writers. The writer's own checkpoint stays, so the log keeps its
    bound, but it finds most of the log copied already.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._running: asyncio.Future[None] | None = None
        self._pending = False

    def committed(self) -> None:
        """Schedule a checkpoint that starts after this commit."""
        self._pending = True
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._run())

    async def wait(self) -> None:
        """Wait for the checkpoints of the commits so far to finish or fail."""
        if self._running is not None:
            await asyncio.wait([self._running])

    async def _run(self) -> None:
        while self._pending:
            self._pending = False
            await asyncio.to_thread(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            with closing(sqlite3.connect(self.path, timeout=_SQLITE_BUSY_TIMEOUT_MS / 1000)) as connection:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            # The writer's own checkpoint still bounds the log, so a failed one only costs time.
            logger.warning("store.checkpoint.failed path=%s error=%s", self.path, exc)


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
