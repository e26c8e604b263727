"""Records: one row per (connection, entity, remote id), written a page at a time."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from interlink.store.database import storage_json
from interlink.store.sequence import next_change_seq
from interlink.store.tables import connections, records, sync_run_seen


class PreparedRecord(NamedTuple):
    """A record ready to store: mapped, serialized and hashed by ``interlink.sync.prepare``.

    ``data`` is the unified fields' JSON text and the remote times are RFC
    3339 texts in UTC (``2026-01-02T03:04:05Z``), as the content hash covers
    them. ``raw`` is serialized only if the record is written.

    A named tuple rather than a frozen dataclass: the engine builds one per
    record, and a tuple is built in a fraction of the time.
    """

    id: str
    remote_id: str
    data: str
    raw: Mapping[str, Any] | None
    content_hash: str
    remote_created_at: str | None
    remote_updated_at: str | None
    deleted: bool = False


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    # The change number the page's writes took, if it wrote anything.
    change_seq: int | None = None

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.deleted


@dataclass(frozen=True)
class StoredRecord:
    pk: int
    id: str
    connection_id: str
    entity: str
    remote_id: str
    data: dict[str, Any]
    raw: dict[str, Any] | None
    remote_created_at: datetime | None
    remote_updated_at: datetime | None
    created_at: datetime
    modified_at: datetime
    deleted: bool
    deleted_at: datetime | None
    change_seq: int


async def upsert_page(
    connection: AsyncConnection,
    *,
    connection_id: str,
    entity: str,
    page: Sequence[PreparedRecord],
    now: datetime,
    counted: Callable[[UpsertCounts], Awaitable[None]] | None = None,
    sending: Callable[[], object] | None = None,
) -> UpsertCounts:
    """Insert new records, rewrite changed ones, and count unchanged ones, in the caller's transaction.

    A record whose content hash is unchanged is not rewritten, so its
    ``modified_at`` and change number stay as they were. A record marked
    deleted by the source is stored as deleted; one that reappears after a
    deletion counts as updated.

    ``counted``, if given, is awaited in the same transaction once the
    page's counts are known, before the change number is taken and any row
    is written. The sync engine saves its cursor and renews its lease
    there, so the transaction can commit as soon as the rows are written.

    ``sending``, if given, is called once the rows are built, just before
    they go to the database, and not at all when nothing changed. The sync
    engine starts preparing its next page then, so that page's Python work
    runs while the database writes this one.
    """
    counts = UpsertCounts()
    latest = {record.remote_id: record for record in page}  # a page may repeat a record
    existing = await _existing(connection, connection_id, entity, list(latest))

    inserts: list[PreparedRecord] = []
    updates: list[PreparedRecord] = []
    for record in latest.values():
        previous = existing.get(record.remote_id)
        if previous is None:
            inserts.append(record)
            counts.created += 1
        elif previous == (record.content_hash, record.deleted):
            counts.unchanged += 1
        else:
            updates.append(record)
            if record.deleted:
                counts.deleted += 1
            else:
                counts.updated += 1

    if counted is not None:
        await counted(counts)
    if not inserts and not updates:
        return counts
    seq = await next_change_seq(connection)
    counts.change_seq = seq
    # Rows go to the driver as positional tuples. They hold the values the ``records`` column
    # types would bind, without SQLAlchemy's processing of each value.
    if connection.dialect.name == "postgresql":
        aware_now = _timestamp_postgresql(now)
        insert_rows = [
            _insert_row(record, connection_id, entity, aware_now, seq, _remote_time_postgresql)
            for record in inserts
        ]
        update_rows = [_update_row(record, aware_now, seq, _remote_time_postgresql) for record in updates]
        if sending is not None:
            sending()
        if insert_rows:
            await connection.exec_driver_sql(_INSERT_SQL_POSTGRESQL, insert_rows)
        if update_rows:
            await connection.exec_driver_sql(_UPDATE_SQL_POSTGRESQL, update_rows)
        return counts
    stamp, stamped_now = _remote_time_sqlite, _timestamp_sqlite(now)
    insert_rows = [_insert_row(record, connection_id, entity, stamped_now, seq, stamp) for record in inserts]
    # A changed record is inserted whole over the stored one, because UPDATE has no multi-row form.
    update_rows = [_insert_row(record, connection_id, entity, stamped_now, seq, stamp) for record in updates]
    if sending is not None:
        sending()
    if insert_rows:
        await _insert_sqlite(connection, insert_rows, _INSERT_SQL_SQLITE)
    if update_rows:
        await _insert_sqlite(connection, update_rows, _INSERT_SQL_SQLITE, _UPSERT_TAIL_SQLITE)
    return counts


async def _insert_sqlite(
    connection: AsyncConnection, rows: list[tuple[Any, ...]], head: str, tail: str = ""
) -> None:
    """Insert ``rows`` with multi-row ``INSERT`` statements of up to 1,000 rows each.

    sqlite3 releases the GIL while a statement runs and takes it back after
    it, so ``executemany`` gives up the GIL once per row. While the event
    loop thread runs Python, as it does when it prepares the next page, the
    writer thread then waits up to the switch interval (5 ms by default) per
    row to take the GIL back. A statement of many rows waits once.
    """
    per_statement = min(_SQLITE_ROWS_PER_STATEMENT, _SQLITE_MAX_PARAMETERS // len(rows[0]))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        statement = head + _values_sqlite(len(chunk[0]), len(chunk)) + tail
        await connection.exec_driver_sql(statement, tuple(chain.from_iterable(chunk)))


@functools.lru_cache(maxsize=64)
def _values_sqlite(width: int, count: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


async def _existing(
    connection: AsyncConnection, connection_id: str, entity: str, remote_ids: list[str]
) -> dict[str, tuple[str, bool]]:
    """Return the content hash and deletion mark of each of ``remote_ids`` that is stored.

    The statement is plain driver SQL: a SQLAlchemy ``IN`` over a page of ids
    builds bind parameters that form reference cycles, and these kept each
    page's ids alive until a full garbage collection.
    """
    found: dict[str, tuple[str, bool]] = {}
    if connection.dialect.name == "postgresql":
        result = await connection.exec_driver_sql(
            _EXISTING_SQL_POSTGRESQL, (connection_id, entity, remote_ids)
        )
        found.update(_hashes(result))
        return found
    per_query = _SQLITE_MAX_PARAMETERS - 2
    for start in range(0, len(remote_ids), per_query):
        chunk = remote_ids[start : start + per_query]
        statement = _EXISTING_SQL_SQLITE.format(", ".join("?" * len(chunk)))
        result = await connection.exec_driver_sql(statement, (connection_id, entity, *chunk))
        found.update(_hashes(result))
    return found


def _hashes(rows: Iterable[Any]) -> Iterator[tuple[str, tuple[str, bool]]]:
    for remote_id, digest, deleted in rows:
        yield remote_id, (digest, bool(deleted))


def _sqlite_parameter_limit() -> int:
    """Read the maximum number of parameters in one statement from the SQLite that sqlite3 links.

    It is 32,766 by default since SQLite 3.32 and 999 before it, and a build may set it
    lower or higher (https://www.sqlite.org/limits.html#max_variable_number).
    """
    with closing(sqlite3.connect(":memory:")) as connection:
        return connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


_SQLITE_MAX_PARAMETERS = _sqlite_parameter_limit()
# Bounds the text of one multi-row INSERT, about 60 KB of placeholders at 1,000 rows.
_SQLITE_ROWS_PER_STATEMENT = 1000
_EXISTING_SQL_SQLITE = (
    "SELECT remote_id, content_hash, deleted FROM records "
    "WHERE connection_id = ? AND entity = ? AND remote_id IN ({})"
)
_EXISTING_SQL_POSTGRESQL = (
    "SELECT remote_id, content_hash, deleted FROM records "
    "WHERE connection_id = $1 AND entity = $2 AND remote_id = ANY($3::text[])"
)


# The statements of a page write, in each driver's placeholder style: qmark for sqlite3,
# numbered for asyncpg. The values come as positional rows from ``_insert_row`` and ``_update_row``.
_INSERT_SQL_SQLITE = (
    "INSERT INTO records (id, connection_id, entity, remote_id, data, raw, content_hash, "
    "remote_created_at, remote_updated_at, created_at, modified_at, deleted, deleted_at, "
    "change_seq) VALUES "
)
_UPSERT_TAIL_SQLITE = (
    " ON CONFLICT (id) DO UPDATE SET data = excluded.data, raw = excluded.raw, "
    "content_hash = excluded.content_hash, remote_created_at = excluded.remote_created_at, "
    "remote_updated_at = excluded.remote_updated_at, modified_at = excluded.modified_at, "
    "deleted = excluded.deleted, deleted_at = excluded.deleted_at, change_seq = excluded.change_seq"
)
_INSERT_SQL_POSTGRESQL = (
    "INSERT INTO records (id, connection_id, entity, remote_id, data, raw, content_hash, "
    "remote_created_at, remote_updated_at, created_at, modified_at, deleted, deleted_at, "
    "change_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
)
_UPDATE_SQL_POSTGRESQL = (
    "UPDATE records SET data = $1, raw = $2, content_hash = $3, remote_created_at = $4, "
    "remote_updated_at = $5, modified_at = $6, deleted = $7, deleted_at = $8, change_seq = $9 "
    "WHERE id = $10"
)


def _timestamp_sqlite(value: datetime | None) -> str | None:
    """Bind a time as ``UtcDateTime`` does on SQLite: naive UTC, in SQLAlchemy's SQLite text format."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} given; Interlink stores aware UTC times")
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return utc.isoformat(sep=" ", timespec="microseconds").removesuffix("+00:00")


def _timestamp_postgresql(value: datetime | None) -> datetime | None:
    """Bind a time as ``UtcDateTime`` does on PostgreSQL: aware, for a ``timestamptz`` column."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} given; Interlink stores aware UTC times")
    return value


def _remote_time_sqlite(text: str | None) -> str | None:
    """Convert a prepared record's ``...Z`` time to the text ``_timestamp_sqlite`` writes for it.

    Slicing takes 0.2 µs, and formatting the time again 1.3 µs (timeit).
    """
    if text is None:
        return None
    # "2026-01-02T03:04:05Z" or "2026-01-02T03:04:05.000006Z" -> "2026-01-02 03:04:05.000006"
    fraction = text[19:26] if len(text) > 20 else ".000000"
    return f"{text[:10]} {text[11:19]}{fraction}"


def _remote_time_postgresql(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _insert_row(
    record: PreparedRecord,
    connection_id: str,
    entity: str,
    stamped_now: Any,
    seq: int,
    stamp: Callable[[str | None], Any],
) -> tuple[Any, ...]:
    return (
        record.id,
        connection_id,
        entity,
        record.remote_id,
        record.data,
        # A missing raw record is stored as JSON null, as SQLAlchemy's JSON type stores None.
        storage_json(record.raw),
        record.content_hash,
        stamp(record.remote_created_at),
        stamp(record.remote_updated_at),
        stamped_now,
        stamped_now,
        record.deleted,
        stamped_now if record.deleted else None,
        seq,
    )


def _update_row(
    record: PreparedRecord, stamped_now: Any, seq: int, stamp: Callable[[str | None], Any]
) -> tuple[Any, ...]:
    return (
        record.data,
        storage_json(record.raw),
        record.content_hash,
        stamp(record.remote_created_at),
        stamp(record.remote_updated_at),
        stamped_now,
        record.deleted,
        stamped_now if record.deleted else None,
        seq,
        record.id,
    )


async def remember_seen(connection: AsyncConnection, run_id: str, remote_ids: Sequence[str]) -> None:
    """Note the remote ids a full pass has read, for deletion reconciliation at its end."""
    if not remote_ids:
        return
    rows = [{"run_id": run_id, "remote_id": remote_id} for remote_id in set(remote_ids)]
    dialect = connection.dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(sync_run_seen).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(sync_run_seen).on_conflict_do_nothing()
    await connection.execute(statement, rows)


async def mark_unseen_deleted(
    connection: AsyncConnection,
    *,
    connection_id: str,
    entity: str,
    run_id: str,
    pass_started_at: datetime,
    history_start: datetime,
    now: datetime,
) -> int:
    """Mark deleted the window's records that existed before the pass and were not seen in it.

    A record without a remote change time counts as inside the window.
    Returns how many records were marked.
    """
    seen = select(sync_run_seen.c.remote_id).where(sync_run_seen.c.run_id == run_id)
    condition = and_(
        records.c.connection_id == connection_id,
        records.c.entity == entity,
        records.c.deleted.is_(False),
        records.c.created_at <= pass_started_at,
        or_(records.c.remote_updated_at.is_(None), records.c.remote_updated_at >= history_start),
        records.c.remote_id.not_in(seen),
    )
    missing = (await connection.execute(select(func.count()).where(condition))).scalar_one()
    if not missing:
        return 0
    seq = await next_change_seq(connection)
    await connection.execute(
        update(records).where(condition).values(deleted=True, deleted_at=now, modified_at=now, change_seq=seq)
    )
    return int(missing)


async def forget_seen(connection: AsyncConnection, run_id: str) -> None:
    await connection.execute(delete(sync_run_seen).where(sync_run_seen.c.run_id == run_id))


@dataclass(frozen=True)
class RecordFilter:
    """The filters of a record list; they are bound into its cursor."""

    entity: str
    connection_id: str | None = None
    end_user_id: str | None = None
    remote_id: str | None = None
    modified_after: datetime | None = None
    remote_updated_after: datetime | None = None
    include_deleted: bool = False


async def list_records(
    connection: AsyncConnection,
    record_filter: RecordFilter,
    *,
    after: tuple[int, int] | None,
    limit: int,
) -> Sequence[StoredRecord]:
    """Return records in commit order (change number, then row), after the position ``after``."""
    query = _filtered(record_filter).order_by(records.c.change_seq, records.c.pk).limit(limit)
    if after is not None:
        seq, pk = after
        query = query.where(
            or_(records.c.change_seq > seq, and_(records.c.change_seq == seq, records.c.pk > pk))
        )
    rows = (await connection.execute(query)).mappings().all()
    return [_stored(row) for row in rows]


def _filtered(record_filter: RecordFilter) -> Select[Any]:
    query = select(records).where(records.c.entity == record_filter.entity)
    if record_filter.connection_id is not None:
        query = query.where(records.c.connection_id == record_filter.connection_id)
    if record_filter.end_user_id is not None:
        owned = select(connections.c.id).where(connections.c.end_user_id == record_filter.end_user_id)
        query = query.where(records.c.connection_id.in_(owned))
    if record_filter.remote_id is not None:
        query = query.where(records.c.remote_id == record_filter.remote_id)
    if record_filter.modified_after is not None:
        query = query.where(records.c.modified_at > record_filter.modified_after)
    if record_filter.remote_updated_after is not None:
        query = query.where(records.c.remote_updated_at > record_filter.remote_updated_after)
    if not record_filter.include_deleted:
        query = query.where(records.c.deleted.is_(False))
    return query


async def get_record(connection: AsyncConnection, entity: str, record_id: str) -> StoredRecord | None:
    query = select(records).where(records.c.id == record_id, records.c.entity == entity)
    row = (await connection.execute(query)).mappings().first()
    return _stored(row) if row else None


def _stored(row: Any) -> StoredRecord:
    return StoredRecord(**{name: row[name] for name in StoredRecord.__dataclass_fields__})


def record_filter_key(record_filter: RecordFilter) -> dict[str, Any]:
    """Return the filters a record cursor is bound to, in a stable form."""
    return {
        "entity": record_filter.entity,
        "connection_id": record_filter.connection_id,
        "end_user_id": record_filter.end_user_id,
        "remote_id": record_filter.remote_id,
        "modified_after": record_filter.modified_after.isoformat() if record_filter.modified_after else None,
        "remote_updated_after": (
            record_filter.remote_updated_after.isoformat() if record_filter.remote_updated_after else None
        ),
        "include_deleted": record_filter.include_deleted,
    }


def position_before(seq: int) -> tuple[int, int]:
    """Return the list position just before every record written with change number ``seq``."""
    return seq - 1, 2**63 - 1
