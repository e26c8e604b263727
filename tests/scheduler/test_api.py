"""Schedules through the HTTP API: ISO 8601 settings, next due times per entity, settings changes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.api.app import create_app
from interlink.connectors.base import Integration
from interlink.crypto import generate_token, hash_token
from interlink.model import format_utc
from interlink.runtime import Runtime
from interlink.store.api_keys import insert_api_key
from interlink.sync.engine import SyncEngine
from interlink.sync.scheduler import Scheduler, latest_next_due
from tests.scheduler.conftest import ENTITIES, T0, Clock, finish_all
from tests.support.memory_source import lookup_for


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the HTTP layer, and the store tests beside them run on both."""
    return f"sqlite:///{tmp_path / 'interlink.sqlite3'}"


@pytest.fixture
async def client(
    runtime: Runtime, clock: Clock, integration: Integration, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """An operator's client of the API app, called in process, with the memory integration installed."""
    monkeypatch.setattr("interlink.connectors.registry.integrations", lambda: {"memory": integration})
    key = generate_token("ilk")
    async with runtime.db.write() as db:
        await insert_api_key(db, name="tests", key_hash=hash_token(key), key_prefix=key[:8], expires_at=None)
    app = create_app(dataclasses.replace(runtime.services(), clock=clock))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://interlink.test", headers=headers
    ) as client:
        yield client


async def create(client: httpx.AsyncClient, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "integration": "memory",
        "end_user": {"id": "customer-1"},
        "credentials": {"password": "right-password"},
    }
    if settings is not None:
        body["settings"] = settings
    response = await client.post("/v1/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def by_entity(states: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {state["entity"]: state for state in states}


async def test_default_frequencies_are_iso_durations(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert created["settings"]["sync_frequency"] == "PT1H"
    assert created["settings"]["full_sync_frequency"] == "P7D"


@pytest.mark.parametrize(
    ("sync_frequency", "full_sync_frequency"),
    [("PT15M", "P1D"), ("PT5M", "PT12H"), ("P1D", "P30D"), ("PT1H30M", "P7D")],
)
async def test_frequencies_round_trip_as_iso_durations(
    client: httpx.AsyncClient, sync_frequency: str, full_sync_frequency: str
) -> None:
    created = await create(client)
    patched = await client.patch(
        f"/v1/connections/{created['id']}",
        json={"sync_frequency": sync_frequency, "full_sync_frequency": full_sync_frequency},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["sync_frequency"] == sync_frequency
    assert patched.json()["settings"]["full_sync_frequency"] == full_sync_frequency
    read = (await client.get(f"/v1/connections/{created['id']}")).json()
    assert read["settings"]["sync_frequency"] == sync_frequency
    assert read["settings"]["full_sync_frequency"] == full_sync_frequency


async def test_settings_given_at_creation_round_trip(client: httpx.AsyncClient) -> None:
    created = await create(client, {"sync_frequency": "PT15M", "full_sync_frequency": "P2D"})
    assert created["settings"]["sync_frequency"] == "PT15M"
    assert created["settings"]["full_sync_frequency"] == "P2D"


@pytest.mark.parametrize("sync_frequency", ["PT4M59S", "P1DT1S", "PT0S", "soon"])
async def test_out_of_range_frequency_rejected(client: httpx.AsyncClient, sync_frequency: str) -> None:
    created = await create(client)
    response = await client.patch(f"/v1/connections/{created['id']}", json={"sync_frequency": sync_frequency})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_new_connection_shows_next_sync_per_entity(client: httpx.AsyncClient) -> None:
    created = await create(client)
    states = by_entity(created["sync"])
    assert set(states) == set(ENTITIES)
    for state in states.values():
        assert state["last_success_at"] is None
        assert state["next_sync_at"] == format_utc(T0)
    assert states["asset"]["next_full_sync_at"] is None
    assert states["vendor"]["next_full_sync_at"] is not None

    health = (await client.get(f"/v1/connections/{created['id']}/health")).json()
    assert by_entity(health["entities"]) == states


async def test_health_shows_last_success_and_next_sync(
    client: httpx.AsyncClient, runtime: Runtime, scheduler: Scheduler, engine: SyncEngine, clock: Clock
) -> None:
    created = await create(client)
    await scheduler.tick()
    clock.now = T0 + timedelta(minutes=1)
    await finish_all(runtime, engine, created["id"])

    health = by_entity((await client.get(f"/v1/connections/{created['id']}/health")).json()["entities"])
    for state in health.values():
        assert state["last_success_at"] == format_utc(clock())
        assert parse(state["next_sync_at"]) > T0 + timedelta(minutes=30)


async def test_shorter_frequency_pulls_next_sync_in(
    client: httpx.AsyncClient, scheduler: Scheduler, clock: Clock
) -> None:
    created = await create(client, {"sync_frequency": "P1D"})
    await scheduler.tick()
    before = by_entity((await client.get(f"/v1/connections/{created['id']}")).json()["sync"])
    for state in before.values():
        assert parse(state["next_sync_at"]) > T0 + timedelta(hours=12)

    patched = await client.patch(f"/v1/connections/{created['id']}", json={"sync_frequency": "PT5M"})
    bound = latest_next_due(timedelta(minutes=5), after=clock())
    for state in by_entity(patched.json()["sync"]).values():
        assert parse(state["next_sync_at"]) < bound


async def test_enabling_entity_schedules_it_at_once(client: httpx.AsyncClient, scheduler: Scheduler) -> None:
    created = await create(client, {"entities": ["vendor"]})
    assert [state["entity"] for state in created["sync"]] == ["vendor"]
    await scheduler.tick()

    patched = await client.patch(f"/v1/connections/{created['id']}", json={"entities": ["vendor", "part"]})
    states = by_entity(patched.json()["sync"])
    assert set(states) == {"vendor", "part"}
    assert states["part"]["next_sync_at"] == format_utc(T0)
    assert parse(states["vendor"]["next_sync_at"]) > T0


async def test_paused_connection_shows_no_next_sync(client: httpx.AsyncClient) -> None:
    created = await create(client)
    disabled = await client.patch(f"/v1/connections/{created['id']}", json={"status": "disabled"})
    assert disabled.status_code == 200, disabled.text
    for state in disabled.json()["sync"]:
        assert state["next_sync_at"] is None
        assert state["next_full_sync_at"] is None

    active = await client.patch(f"/v1/connections/{created['id']}", json={"status": "active"})
    for state in active.json()["sync"]:
        assert state["next_sync_at"] == format_utc(T0)


async def test_settings_change_wakes_running_scheduler(
    client: httpx.AsyncClient, runtime: Runtime, clock: Clock, integration: Integration
) -> None:
    dispatched: asyncio.Queue[str] = asyncio.Queue()

    class QueueDispatcher:
        async def dispatch(self, run_id: str, *, priority: int = 0) -> None:
            dispatched.put_nowait(run_id)

    created = await create(client, {"entities": ["vendor"]})
    # The interval is far longer than the test, so only a wake can cause the second tick.
    scheduler = Scheduler(
        runtime.db, QueueDispatcher(), clock=clock, interval=3600, integration_lookup=lookup_for(integration)
    )
    scheduler.start()
    try:
        await asyncio.wait_for(dispatched.get(), timeout=10)  # the first tick queues vendor
        await client.patch(f"/v1/connections/{created['id']}", json={"entities": ["vendor", "part"]})
        run_id = await asyncio.wait_for(dispatched.get(), timeout=10)
    finally:
        await scheduler.stop()
    runs = (await client.get(f"/v1/connections/{created['id']}/syncs")).json()["data"]
    assert {run["id"]: run["entity"] for run in runs}[run_id] == "part"
