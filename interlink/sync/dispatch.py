"""How a run id reaches ``SyncEngine.execute_run``: the dispatcher interface and its shapes.

The embedded shape runs a bounded pool of asyncio tasks in the server
process. The scale-out shape sends a Dramatiq message whose actor calls the
same function. Runs are dispatched only after the transaction that queued
them committed. A reaper re-dispatches queued runs and runs whose lease
expired, because an in-process queue does not survive a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from interlink.store import Database
from interlink.store.runs import runs_to_dispatch

logger = logging.getLogger(__name__)

# Manual and API triggers are served before scheduled runs.
PRIORITY_MANUAL = 0
PRIORITY_SCHEDULED = 1


class Dispatcher(Protocol):
    async def dispatch(self, run_id: str, *, priority: int = PRIORITY_MANUAL) -> None:
        """Hand a committed run id to a worker; delivering an id twice is harmless."""
        ...


class LocalDispatcher:
    """A bounded pool of asyncio tasks executing runs in this process."""

    def __init__(self, execute: Callable[[str], Awaitable[object]], *, concurrency: int = 4) -> None:
        self._execute = execute
        self._concurrency = concurrency
        self._queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self._pending: set[str] = set()
        self._order = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []

    async def dispatch(self, run_id: str, *, priority: int = PRIORITY_MANUAL) -> None:
        if run_id in self._pending:
            return
        self._pending.add(run_id)
        self._queue.put_nowait((priority, next(self._order), run_id))

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"sync-worker-{number}")
            for number in range(self._concurrency)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def join(self) -> None:
        """Wait until every dispatched run has been executed (for the CLI and tests)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            _, _, run_id = await self._queue.get()
            self._pending.discard(run_id)
            try:
                await self._execute(run_id)
            except Exception:
                logger.exception("sync.dispatch.failed run_id=%s", run_id)
            finally:
                self._queue.task_done()


class Reaper:
    """Re-dispatches queued runs and runs whose lease expired, at a fixed interval."""

    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], datetime],
        interval: float = 15.0,
        batch: int = 500,
    ) -> None:
        self._db = db
        self._dispatcher = dispatcher
        self._clock = clock
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def reap_once(self) -> int:
        async with self._db.read() as db:
            run_ids = await runs_to_dispatch(db, now=self._clock(), limit=self._batch)
        for run_id in run_ids:
            await self._dispatcher.dispatch(run_id, priority=PRIORITY_SCHEDULED)
        return len(run_ids)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sync-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                count = await self.reap_once()
                if count:
                    logger.debug("sync.reaper.dispatched count=%d", count)
            except Exception:
                logger.exception("sync.reaper.failed")
            await asyncio.sleep(self._interval)
