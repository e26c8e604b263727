"""Re-encrypting stored secrets with the first key of ``INTERLINK_SECRET_KEY``.

To rotate the key, an operator puts a new key first and keeps the old ones
after it. Every value then stays readable, and new values use the new key.
``SecretRotation`` re-encrypts the stored values that still use an older key,
in small batches, with ``MultiFernet.rotate``. ``rotation_status`` counts the
values per key, so the operator knows when the old keys can be removed.

Every ``LargeBinary`` column of the schema contains a Fernet token, so the
columns to rotate are found in the table metadata: connection credentials,
webhook signing secrets and any encrypted column added later. A value is
written back only if it is still the one that was read, so a pass is
idempotent and safe beside other writers and other processes' passes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Column, LargeBinary, MetaData, Table, and_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.crypto import CredentialBox
from interlink.store import Database
from interlink.store.tables import metadata

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
# While more than one key is configured, a pass runs at start and then at this interval,
# so values written by a process that still had an old key first are rotated too.
PASS_INTERVAL_SECONDS = 3600.0
# Unreadable values logged one by one per column and pass; the summary line counts all of them.
MAX_UNREADABLE_LOGGED = 10


@dataclass(frozen=True)
class EncryptedColumn:
    """A column of Fernet tokens, with the primary key that batches walk along."""

    table: Table
    column: Column[Any]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    @property
    def key_columns(self) -> list[Column[Any]]:
        return list(self.table.primary_key.columns)


def encrypted_columns(schema: MetaData = metadata) -> list[EncryptedColumn]:
    """Return every ``LargeBinary`` column of the schema, in table and column order."""
    found = []
    for table in sorted(schema.tables.values(), key=lambda table: table.name):
        for column in table.columns:
            if isinstance(column.type, LargeBinary):
                if not table.primary_key.columns:
                    raise ValueError(f"table {table.name} has an encrypted column but no primary key")
                found.append(EncryptedColumn(table, column))
    return found


class KeyRing:
    """The Fernet keys of ``INTERLINK_SECRET_KEY``, in order: the first encrypts, all decrypt."""

    def __init__(self, setting: str) -> None:
        CredentialBox(setting)  # raises SecretKeyError with the fix for a missing or malformed key
        self.keys = [Fernet(part.strip()) for part in setting.split(",") if part.strip()]
        self._all = MultiFernet(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def key_position(self, token: bytes) -> int | None:
        """Return the 0-based position of the key that encrypted ``token``, or ``None`` if no key did."""
        for position, key in enumerate(self.keys):
            try:
                # Verifies the token's HMAC with this key without decrypting it.
                key.extract_timestamp(token)
            except InvalidToken:
                continue
            return position
        return None

    def rotate(self, token: bytes) -> bytes:
        """Return ``token`` re-encrypted with the first key; raise ``InvalidToken`` if no key reads it."""
        return self._all.rotate(token)


@dataclass
class ColumnStatus:
    """How many values of one encrypted column each key encrypted."""

    column: str
    per_key: list[int]
    unreadable: int = 0

    @property
    def total(self) -> int:
        return sum(self.per_key) + self.unreadable

    @property
    def under_older_keys(self) -> int:
        return sum(self.per_key[1:])


@dataclass
class RotationStatus:
    """The key use of every encrypted column."""

    columns: list[ColumnStatus]

    @property
    def under_older_keys(self) -> int:
        return sum(column.under_older_keys for column in self.columns)

    @property
    def unreadable(self) -> int:
        return sum(column.unreadable for column in self.columns)

    def per_key(self) -> list[int]:
        totals = [0] * max((len(column.per_key) for column in self.columns), default=0)
        for column in self.columns:
            for position, count in enumerate(column.per_key):
                totals[position] += count
        return totals

    @property
    def complete(self) -> bool:
        """Whether every stored value uses the first key, so the other keys can be removed."""
        return self.under_older_keys == 0 and self.unreadable == 0


@dataclass
class ColumnProgress:
    """The progress of a rotation pass in one column."""

    column: str
    scanned: int = 0
    rotated: int = 0
    unreadable: int = 0
    # Values that changed between read and write: another writer stored a new value first.
    changed_meanwhile: int = 0


@dataclass
class RotationReport:
    """The progress of a rotation pass over every encrypted column."""

    columns: list[ColumnProgress] = field(default_factory=list)

    @property
    def rotated(self) -> int:
        return sum(column.rotated for column in self.columns)

    @property
    def unreadable(self) -> int:
        return sum(column.unreadable for column in self.columns)

    @property
    def scanned(self) -> int:
        return sum(column.scanned for column in self.columns)

    @property
    def changed_meanwhile(self) -> int:
        return sum(column.changed_meanwhile for column in self.columns)


async def _batches(
    connection: AsyncConnection, target: EncryptedColumn, *, after: tuple[Any, ...] | None, limit: int
) -> Sequence[Any]:
    """Return the next rows (key values..., token) after the key ``after``, in key order."""
    keys = target.key_columns
    query = select(*keys, target.column).where(target.column.is_not(None)).order_by(*keys).limit(limit)
    if after is not None:
        query = query.where(tuple_(*keys) > tuple_(*after) if len(keys) > 1 else keys[0] > after[0])
    return list(await connection.execute(query))


async def _walk(db: Database, target: EncryptedColumn, batch_size: int) -> AsyncIterator[Sequence[Any]]:
    """Yield the rows of an encrypted column in read-only batches."""
    after: tuple[Any, ...] | None = None
    width = len(target.key_columns)
    while True:
        async with db.read() as connection:
            rows = await _batches(connection, target, after=after, limit=batch_size)
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        after = tuple(rows[-1][:width])


async def rotation_status(db: Database, ring: KeyRing, *, batch_size: int = 1000) -> RotationStatus:
    """Count, per encrypted column, the values each key encrypted and the values no key reads."""
    columns = []
    for target in encrypted_columns():
        status = ColumnStatus(target.name, [0] * len(ring))
        async for rows in _walk(db, target, batch_size):
            for row in rows:
                position = ring.key_position(bytes(row[-1]))
                if position is None:
                    status.unreadable += 1
                else:
                    status.per_key[position] += 1
        columns.append(status)
    return RotationStatus(columns)


async def rotate_column(
    db: Database, ring: KeyRing, target: EncryptedColumn, *, batch_size: int = BATCH_SIZE
) -> ColumnProgress:
    """Re-encrypt with the first key every value of one column that uses an older key."""
    progress = ColumnProgress(target.name)
    keys = target.key_columns
    width = len(keys)
    after: tuple[Any, ...] | None = None
    while True:
        # One short writing transaction per batch, so other writers wait at most one batch.
        async with db.write() as connection:
            rows = await _batches(connection, target, after=after, limit=batch_size)
            rotated = await _rotate_rows(connection, ring, target, rows, progress)
        progress.scanned += len(rows)
        if rotated:
            logger.info(
                "secrets.rotation.progress column=%s scanned=%d rotated=%d",
                target.name,
                progress.scanned,
                progress.rotated,
            )
        if len(rows) < batch_size:
            return progress
        after = tuple(rows[-1][:width])


async def _rotate_rows(
    connection: AsyncConnection,
    ring: KeyRing,
    target: EncryptedColumn,
    rows: Sequence[Any],
    progress: ColumnProgress,
) -> int:
    keys = target.key_columns
    rotated = 0
    for row in rows:
        token = bytes(row[-1])
        key_values = row[: len(keys)]
        position = ring.key_position(token)
        if position == 0:
            continue
        if position is None:
            progress.unreadable += 1
            if progress.unreadable > MAX_UNREADABLE_LOGGED:
                continue  # counted in the pass's summary line
            logger.error(
                "secrets.rotation.unreadable column=%s row=%s fix=%s",
                target.name,
                "/".join(str(value) for value in key_values),
                "add the key that encrypted this value to INTERLINK_SECRET_KEY",
            )
            continue
        result = await connection.execute(
            update(target.table)
            .where(and_(*(column == value for column, value in zip(keys, key_values, strict=True))))
            .where(target.column == token)
            .values({target.column.name: ring.rotate(token)})
        )
        if result.rowcount == 1:
            rotated += 1
        else:
            progress.changed_meanwhile += 1
    progress.rotated += rotated
    return rotated


async def rotate_all(db: Database, ring: KeyRing, *, batch_size: int = BATCH_SIZE) -> RotationReport:
    """Run one rotation pass over every encrypted column."""
    report = RotationReport()
    for target in encrypted_columns():
        report.columns.append(await rotate_column(db, ring, target, batch_size=batch_size))
    return report


class SecretRotation:
    """The background task that re-encrypts stored secrets while several keys are configured."""

    def __init__(
        self,
        db: Database,
        secret_key: str,
        *,
        batch_size: int = BATCH_SIZE,
        interval_seconds: float = PASS_INTERVAL_SECONDS,
    ) -> None:
        self._db = db
        self._ring = KeyRing(secret_key)
        self._batch_size = batch_size
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        # Set after every finished pass, for callers that wait for one.
        self.pass_finished = asyncio.Event()

    @property
    def needed(self) -> bool:
        """Whether there is an older key whose values may need re-encrypting."""
        return len(self._ring) > 1

    async def run_pass(self) -> RotationReport:
        """Re-encrypt every value that uses an older key, and log the outcome."""
        logger.info("secrets.rotation.started keys=%d batch_size=%d", len(self._ring), self._batch_size)
        report = await rotate_all(self._db, self._ring, batch_size=self._batch_size)
        self.passes += 1
        self.pass_finished.set()
        logger.info(
            "secrets.rotation.finished scanned=%d rotated=%d unreadable=%d changed_meanwhile=%d",
            report.scanned,
            report.rotated,
            report.unreadable,
            report.changed_meanwhile,
        )
        if report.unreadable == 0 and report.changed_meanwhile == 0:
            logger.info(
                "secrets.rotation.complete next=%s",
                "remove the keys after the first from INTERLINK_SECRET_KEY; "
                "check first with: interlink secret-key status",
            )
        return report

    def start(self) -> None:
        if not self.needed:
            return
        self._task = asyncio.create_task(self._loop(), name="secret-rotation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_pass()
            except Exception:
                logger.exception("secrets.rotation.failed retry_in_s=%d", self._interval)
            await asyncio.sleep(self._interval)
