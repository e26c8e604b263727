"""Group commit: the writes of concurrent tasks share one transaction per batch.

On SQLite, opening and committing a writing transaction costs about as much
as two or three statements (measured with aiosqlite, see
docs/benchmarks/webhooks.md), and only one runs at a time. Deliveries that
finish at the same moment therefore write their outcomes together: the
first caller starts a flush, callers arriving while it runs form the next
batch. A batch whose transaction fails is retried one write per
transaction, so a failing write fails only its own caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.store import Database

logger = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[AsyncConnection], Awaitable[T]]

MAX_BATCH = 100


class GroupCommit(Generic[T]):
    """Runs the submitted writes in shared transactions and returns each write's result to its caller."""

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._pending: list[tuple[Write[T], asyncio.Future[T]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, write: Write[T]) -> T:
        """Run ``write`` in a transaction shared with other callers; return its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="webhook-group-commit")
        return await asyncio.shield(future)

    async def wait_closed(self) -> None:
        """Wait for the writes already submitted to be committed."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._write_batch(batch)
            except Exception as exc:
                logger.warning(
                    "webhook.group_commit.batch_failed size=%d error=%r; retrying each write alone",
                    len(batch),
                    exc,
                )
                await self._write_each(batch)
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    _resolve(future, result)

    async def _write_batch(self, batch: list[tuple[Write[T], asyncio.Future[T]]]) -> list[T]:
        async with self._db.write() as connection:
            return [await write(connection) for write, _ in batch]

    async def _write_each(self, batch: list[tuple[Write[T], asyncio.Future[T]]]) -> None:
        for write, future in batch:
            try:
                async with self._db.write() as connection:
                    result = await write(connection)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                _resolve(future, result)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)
