"""Wiring: the store, the engine, the dispatcher and the API of one Interlink process."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import FastAPI

from interlink.api.app import create_app
from interlink.api.services import Services
from interlink.connectors.http import create_client
from interlink.connectors.oauth import use_refresh_coordinator
from interlink.crypto import CredentialBox
from interlink.health import HealthMonitor
from interlink.secrets_rotation import SecretRotation
from interlink.settings import Settings
from interlink.store import Database
from interlink.store.migrate import upgrade
from interlink.store.oauth import DatabaseRefreshCoordinator
from interlink.sync.dispatch import LocalDispatcher, Reaper
from interlink.sync.engine import Clock, HttpFactory, SyncEngine, utcnow
from interlink.sync.scheduler import Scheduler
from interlink.webhooks import create_delivery_worker

logger = logging.getLogger(__name__)


# Young, middle and old generation thresholds of the garbage collector; see freeze_startup_objects.
COLLECTION_THRESHOLDS = (50_000, 20, 100)


def freeze_startup_objects() -> None:
    """Tune the garbage collector for a long-running process, once after startup.

    The process keeps its modules, settings and app until it exits, so
    ``gc.freeze`` spares full collections from scanning them again. A sync
    keeps a page of records alive while it maps and stores them, and with
    Python's default thresholds (700, 10, 10) the collector scanned those
    live objects again and again for almost nothing: over 30,000 records,
    ``bench/engine_throughput.py`` spent 13 µs per record in collections
    that found a few hundred objects. ``COLLECTION_THRESHOLDS`` brings that
    below 1 µs. Peak RSS stayed the same because the cycles that held page
    bodies, httpx's responses, are broken when a response is read
    (``interlink.connectors.http``).
    """
    gc.freeze()
    gc.set_threshold(*COLLECTION_THRESHOLDS)


@dataclass
class Runtime:
    """Everything one process runs, built from settings."""

    settings: Settings
    clock: Clock = utcnow
    http_factory: HttpFactory = create_client
    workers: bool = True
    db: Database = field(init=False)
    credentials: CredentialBox = field(init=False)
    engine: SyncEngine = field(init=False)
    dispatcher: LocalDispatcher = field(init=False)
    reaper: Reaper = field(init=False)
    scheduler: Scheduler = field(init=False)
    health: HealthMonitor = field(init=False)
    secret_rotation: SecretRotation = field(init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.database_url)
        self.credentials = CredentialBox(self.settings.secret_key)
        self.engine = SyncEngine(
            self.db,
            self.credentials,
            lease=timedelta(seconds=self.settings.lease_seconds),
            clock=self.clock,
            http_factory=self.http_factory,
        )
        self.dispatcher = LocalDispatcher(self.engine.execute_run, concurrency=self.settings.workers)
        self.engine.on_run_waiting = self.dispatcher.dispatch
        self.reaper = Reaper(self.db, self.dispatcher, clock=self.clock)
        self.webhooks = create_delivery_worker(
            self.db, self.credentials, self.settings, clock=self.clock, http_factory=self.http_factory
        )
        self.scheduler = Scheduler(self.db, self.dispatcher, clock=self.clock)
        self.health = HealthMonitor(
            self.db, self.credentials, clock=self.clock, http_factory=self.http_factory
        )
        self.secret_rotation = SecretRotation(self.db, self.settings.secret_key)

    def services(self) -> Services:
        return Services(
            settings=self.settings,
            db=self.db,
            credentials=self.credentials,
            dispatcher=self.dispatcher if self.workers else None,
            clock=self.clock,
            http_factory=self.http_factory,
        )

    async def start(self, *, migrate: bool | None = None) -> None:
        """Apply migrations (by default only on SQLite), then start the background workers and tasks."""
        if migrate if migrate is not None else self.db.is_sqlite:
            await upgrade(self.db)
        # OAuth refreshes of one connection exclude each other in every process sharing this database.
        use_refresh_coordinator(DatabaseRefreshCoordinator(self.db, self.credentials))
        if self.workers:
            self.dispatcher.start()
            self.reaper.start()
            self.webhooks.start()
            self.scheduler.start()
            self.health.start()
            self.secret_rotation.start()
        logger.info(
            "runtime.started workers=%s database=%s",
            self.workers,
            "sqlite" if self.db.is_sqlite else "postgresql",
        )

    async def stop(self) -> None:
        await self.secret_rotation.stop()
        await self.health.stop()
        await self.scheduler.stop()
        await self.reaper.stop()
        await self.dispatcher.stop()
        await self.webhooks.stop()
        use_refresh_coordinator(None)
        await self.db.dispose()
        logger.info("runtime.stopped")

    def app(self, *, manage_lifecycle: bool = True) -> FastAPI:
        """Build the API; with ``manage_lifecycle`` the server's lifespan starts and stops this runtime."""
        if not manage_lifecycle:
            return create_app(self.services())
        return create_app(self.services(), on_startup=self.start, on_shutdown=self.stop)
