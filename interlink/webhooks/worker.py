"""The embedded delivery worker: fan out, claim due deliveries, send them from a bounded pool.

One loop per process fans new outbox events out into deliveries, leases the
due ones to this process (safe with several processes, see
``claim_due_deliveries``) and hands their ids to a pool of asyncio tasks,
each calling ``WebhookDeliverer.deliver``. The loop wakes right after a
local transaction that wrote an event commits (``wakeup.py``), and polls
every ``poll_interval`` seconds for everything else: retries that became
due, and events written by other processes.

A scale-out worker can hand ids to ``deliver`` in the same way from a
message queue; ``DeliveryDispatcher`` is the interface between the two.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from interlink.connectors.http import create_client
from interlink.crypto import CredentialBox
from interlink.settings import Settings
from interlink.store import Database
from interlink.store.webhooks import DeliveryJob, claim_due_deliveries, due_delivery_exists, load_deliveries
from interlink.sync.engine import HttpFactory
from interlink.webhooks import wakeup
from interlink.webhooks.delivery import Clock, WebhookDeliverer, utcnow
from interlink.webhooks.fanout import fan_out
from interlink.webhooks.matrix_target import MatrixTarget
from interlink.webhooks.urls import UrlGuard

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
DEFAULT_POLL_INTERVAL = 1.0


class DeliveryDispatcher(Protocol):
    async def dispatch(self, delivery_id: str) -> None:
        """Hand a delivery id to a worker; handing over an id twice is harmless."""
        ...


class DeliveryWorker:
    """Runs the fan-out, claims due deliveries, and sends them with at most ``concurrency`` at once."""

    def __init__(
        self,
        db: Database,
        deliverer: WebhookDeliverer,
        *,
        clock: Clock = utcnow,
        concurrency: int = DEFAULT_CONCURRENCY,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self.db = db
        self.deliverer = deliverer
        self.clock = clock
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self._queue: asyncio.Queue[tuple[str, DeliveryJob | None]] = asyncio.Queue()
        self._in_flight: set[str] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        # Whether the last claim filled every free slot, so more deliveries may be due.
        self._backlog = False
        # Loop passes finished since start; lets tests wait for the loop to be idle.
        self.passes = 0

    @property
    def capacity(self) -> int:
        """Deliveries leased to this process at most: enough queued to keep every sender busy."""
        return self.concurrency * 2

    def start(self) -> None:
        """Start the loop and the senders; raise ``ValueError`` when the CA bundle cannot be loaded."""
        self.deliverer.open()
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = wakeup.subscribe(self.db, self.wake)
        self._tasks = [asyncio.create_task(self._poll(), name="webhook-poller")]
        self._tasks += [
            asyncio.create_task(self._send(), name=f"webhook-sender-{number}")
            for number in range(self.concurrency)
        ]
        logger.info("webhook.worker.started concurrency=%d owner=%s", self.concurrency, self.deliverer.owner)

    async def stop(self) -> None:
        """Stop the loop and the senders, then close the HTTP client.

        A delivery cut off mid-send keeps its lease until it expires, and is
        then sent again by whichever worker claims it.
        """
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        was_running = bool(self._tasks)
        self._tasks = []
        await self.deliverer.aclose()
        if was_running:
            logger.info("webhook.worker.stopped")

    def wake(self) -> None:
        """Make the loop run now; safe to call from any thread."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._wake.set)

    async def dispatch(self, delivery_id: str, job: DeliveryJob | None = None) -> None:
        if delivery_id in self._in_flight:
            return
        self._in_flight.add(delivery_id)
        self._queue.put_nowait((delivery_id, job))

    async def run_once(self) -> int:
        """Fan out new events and dispatch the due deliveries this process has room for; return how many."""
        now = self.clock()
        await fan_out(self.db, now=now)
        room = self.capacity - len(self._in_flight)
        if room <= 0:
            return 0
        async with self.db.read() as connection:
            if not await due_delivery_exists(connection, now=now):
                return 0
        async with self.db.write() as connection:
            claimed = await claim_due_deliveries(
                connection,
                owner=self.deliverer.owner,
                now=now,
                lease_until=now + self.deliverer.lease,
                limit=room,
            )
            jobs = await load_deliveries(connection, claimed)
        self._backlog = len(claimed) == room
        for delivery_id in claimed:
            await self.dispatch(delivery_id, jobs.get(delivery_id))
        return len(claimed)

    async def wait_idle(self) -> None:
        """Wait until every dispatched delivery has been sent (for tests and benchmarks)."""
        await self._queue.join()

    async def _poll(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                logger.exception("webhook.worker.poll_failed")
            self.passes += 1
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    async def _send(self) -> None:
        while True:
            delivery_id, job = await self._queue.get()
            try:
                await self.deliverer.deliver(delivery_id, job=job)
            except Exception:
                logger.exception("webhook.delivery.crashed delivery_id=%s", delivery_id)
            finally:
                self._in_flight.discard(delivery_id)
                self._queue.task_done()
                # A full claim may have left due deliveries behind: claim more once half the slots are free.
                if self._backlog and len(self._in_flight) <= self.concurrency:
                    self._backlog = False
                    self._wake.set()


def create_delivery_worker(
    db: Database,
    credentials: CredentialBox,
    settings: Settings,
    *,
    clock: Clock = utcnow,
    http_factory: HttpFactory = create_client,
) -> DeliveryWorker:
    """Build the worker of one process from its settings.

    ``http_factory`` builds the HTTP client that Matrix endpoints post through.
    """
    guard = UrlGuard.from_settings(settings)
    matrix = MatrixTarget(db, credentials, http_factory=http_factory)
    deliverer = WebhookDeliverer(
        db,
        credentials,
        guard=guard,
        ca_bundle=settings.webhook_ca_bundle,
        clock=clock,
        senders={"matrix": matrix},
    )
    return DeliveryWorker(db, deliverer, clock=clock)
