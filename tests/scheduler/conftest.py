"""Fixtures for the scheduler tests: an injected clock, a three-entity source and a recording dispatcher."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from interlink.connectors.base import EntityCapabilities, Integration
from interlink.runtime import Runtime
from interlink.store.connections import insert_connection, transition_status, update_connection
from interlink.store.runs import RunRow, list_runs
from interlink.store.schedules import Schedule, list_schedules
from interlink.sync.engine import SyncEngine
from interlink.sync.scheduler import Scheduler
from tests.support.memory_source import MemorySource, credentials, lookup_for, memory_integration

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ENTITIES = ("vendor", "part", "asset")


class Clock:
    """A clock that tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingDispatcher:
    """Records what it was given instead of executing runs."""

    def __init__(self) -> None:
        self.dispatched: list[tuple[str, int]] = []

    async def dispatch(self, run_id: str, *, priority: int = 0) -> None:
        self.dispatched.append((run_id, priority))


def scheduled_integration(source: MemorySource) -> Integration:
    """The in-memory source with three entities; ``asset`` has no full read."""
    return dataclasses.replace(
        memory_integration(source),
        entities=(
            EntityCapabilities("vendor"),
            EntityCapabilities("part"),
            EntityCapabilities("asset", full=False, detects_deletions=False),
        ),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def source() -> MemorySource:
    source = MemorySource()
    for number in range(4):
        source.put(f"v{number}", f"Vendor {number}", T0.replace(day=1, hour=number))
    return source


@pytest.fixture
def integration(source: MemorySource) -> Integration:
    return scheduled_integration(source)


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def scheduler(
    runtime: Runtime, dispatcher: RecordingDispatcher, clock: Clock, integration: Integration
) -> Scheduler:
    return Scheduler(
        runtime.db, dispatcher, clock=clock, integration_lookup=lookup_for(integration), rng=random.Random(7)
    )


@pytest.fixture
def engine(runtime: Runtime, clock: Clock, integration: Integration) -> SyncEngine:
    return SyncEngine(
        runtime.db,
        runtime.credentials,
        clock=clock,
        integration_lookup=lookup_for(integration),
        owner="worker-a",
    )


async def add_connection(
    runtime: Runtime, settings: dict[str, Any] | None = None, *, integration: str = "memory"
) -> str:
    async with runtime.db.write() as db:
        row = await insert_connection(
            db,
            integration=integration,
            auth_scheme="password",
            end_user_id="customer-1",
            end_user_name=None,
            end_user_email=None,
            credentials=runtime.credentials.encrypt(credentials("right-password")),
            settings=settings if settings is not None else {"sync_frequency": "PT15M"},
        )
    return row.id


@pytest.fixture
async def connection_id(runtime: Runtime) -> str:
    return await add_connection(runtime)


async def runs_of(runtime: Runtime, connection_id: str) -> Sequence[RunRow]:
    async with runtime.db.read() as db:
        return list(reversed(await list_runs(db, connection_id, before_id=None, limit=1000)))


async def schedules_of(runtime: Runtime, connection_id: str) -> dict[str, Schedule]:
    async with runtime.db.read() as db:
        return {schedule.entity: schedule for schedule in await list_schedules(db, connection_id)}


async def set_status(runtime: Runtime, connection_id: str, status: str) -> None:
    reason = None if status == "active" else "set_by_test"
    async with runtime.db.write() as db:
        await transition_status(db, connection_id, status, reason=reason)


async def set_settings(runtime: Runtime, connection_id: str, settings: dict[str, Any]) -> None:
    async with runtime.db.write() as db:
        await update_connection(db, connection_id, settings=settings)


async def finish_all(runtime: Runtime, engine: SyncEngine, connection_id: str) -> None:
    """Execute every queued run of the connection, as a worker would."""
    for run in await runs_of(runtime, connection_id):
        if run.status == "queued":
            finished = await engine.execute_run(run.id)
            assert finished is not None
            assert finished.status == "succeeded", finished.error
