"""Group commit: items submitted by concurrent tasks are written together, one transaction per batch.

On SQLite, opening and committing a writing transaction costs about as much
as two or three statements (measured with aiosqlite, see
docs/benchmarks/webhooks.md), and only one runs at a time. Deliveries that
finish at the same moment therefore write their outcomes together: the
first caller starts a flush, and callers arriving while it runs form the
next batch. A batch whose transaction fails is retried one item per
transaction, so a failing item fails only its own caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.store import Database

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
# Writes a batch inside the given transaction and returns one result per item, in order.
BatchWrite = Callable[[AsyncConnection, Sequence[Item]], Awaitable[Sequence[Result]]]

MAX_BATCH = 100


class GroupCommit(Generic[Item, Result]):
    """Writes submitted items in shared transactions and returns each item's result to its caller."""

    def __init__(
        self, db: Database, write_batch: BatchWrite[Item, Result], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._db = db
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write ``item`` in a transaction shared with other callers; return its result once committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="webhook-group-commit")
        return await asyncio.shield(future)

    async def wait_closed(self) -> None:
        """Wait until the items already submitted are committed."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._write([item for item, _ in batch])
            except Exception as exc:
                logger.warning(
                    "webhook.group_commit.batch_failed size=%d error=%r; retrying each item alone",
                    len(batch),
                    exc,
                )
                await self._write_each(batch)
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def _write(self, items: Sequence[Item]) -> Sequence[Result]:
        async with self._db.write() as connection:
            results = await self._write_batch(connection, items)
            if len(results) != len(items):
                raise ValueError(f"the batch write returned {len(results)} results for {len(items)} items")
        return results

    async def _write_each(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        for item, future in batch:
            try:
                (result,) = await self._write([item])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
