"""Credentials rotated in the NetSuite sandbox: one transition to reauthorization_required, then recovery."""

from __future__ import annotations

from datetime import timedelta

import httpx

from interlink.runtime import Runtime
from interlink.store.runs import list_runs
from interlink.sync.scheduler import Scheduler
from tests.health.conftest import (
    FakeClock,
    check_round,
    connect_netsuite,
    events_of,
    health_of,
    outcome_for,
    rotate_sandbox_token,
    start_monitor,
    status_of,
    sync,
)
from tests.sandboxes.netsuite.conftest import NetSuite
from tests.scheduler.conftest import RecordingDispatcher

STATUS_CHANGED = "connection.status_changed"
REAUTHORIZATION_REQUIRED = "connection.reauthorization_required"


async def test_rotated_token_fails_next_sync_once(
    runtime: Runtime, clock: FakeClock, ns_sandbox: NetSuite
) -> None:
    connection_id = await connect_netsuite(runtime, ns_sandbox.credentials)
    first = await sync(runtime, connection_id)
    assert first.status == "succeeded", first.error

    rotate_sandbox_token(ns_sandbox)
    failed = await sync(runtime, connection_id)

    assert failed.status == "failed"
    assert failed.error_code == "credentials_invalid"
    assert await status_of(runtime, connection_id) == ("reauthorization_required", "credentials_invalid")
    (changed,) = await events_of(runtime, connection_id, STATUS_CHANGED)
    assert changed.data["status"] == "reauthorization_required"
    assert changed.data["status_reason"] == "credentials_invalid"
    (required,) = await events_of(runtime, connection_id, REAUTHORIZATION_REQUIRED)
    assert required.data["connection_id"] == connection_id


async def test_further_failures_emit_no_more_events(
    runtime: Runtime, clock: FakeClock, ns_sandbox: NetSuite
) -> None:
    connection_id = await connect_netsuite(runtime, ns_sandbox.credentials)
    rotate_sandbox_token(ns_sandbox)
    await sync(runtime, connection_id)
    monitor = await start_monitor(runtime, clock)

    again = [await sync(runtime, connection_id) for _ in range(3)]
    outcomes = [await check_round(monitor, clock) for _ in range(3)]

    assert [run.error_code for run in again] == ["connection_reauthorization_required"] * 3
    assert all(connection_id not in {o.connection_id for o in round_} for round_ in outcomes)
    assert await status_of(runtime, connection_id) == ("reauthorization_required", "credentials_invalid")
    assert len(await events_of(runtime, connection_id, STATUS_CHANGED)) == 1
    assert len(await events_of(runtime, connection_id, REAUTHORIZATION_REQUIRED)) == 1


async def test_health_check_finds_rotated_token_without_sync(
    runtime: Runtime, clock: FakeClock, ns_sandbox: NetSuite
) -> None:
    connection_id = await connect_netsuite(runtime, ns_sandbox.credentials)
    rotate_sandbox_token(ns_sandbox)
    monitor = await start_monitor(runtime, clock)

    outcome = outcome_for(await check_round(monitor, clock), connection_id)
    async with runtime.db.read() as db:
        runs_before_sync = await list_runs(db, connection_id, before_id=None, limit=10)
    later_run = await sync(runtime, connection_id)

    assert outcome.checked
    assert outcome.error_code == "credentials_invalid"
    assert outcome.status == "reauthorization_required"
    assert outcome.status_changed
    assert runs_before_sync == []
    assert later_run.error_code == "connection_reauthorization_required"
    health = await health_of(runtime, connection_id)
    assert health.last_check_ok is False
    assert health.last_error_code == "credentials_invalid"
    assert len(await events_of(runtime, connection_id, STATUS_CHANGED)) == 1
    assert len(await events_of(runtime, connection_id, REAUTHORIZATION_REQUIRED)) == 1


async def test_scheduled_syncs_pause_while_reauthorization_required(
    runtime: Runtime, clock: FakeClock, ns_sandbox: NetSuite, api: httpx.AsyncClient
) -> None:
    connection_id = await connect_netsuite(runtime, ns_sandbox.credentials)
    working = rotate_sandbox_token(ns_sandbox)
    await sync(runtime, connection_id)
    dispatcher = RecordingDispatcher()
    scheduler = Scheduler(runtime.db, dispatcher, clock=clock)

    clock.advance(timedelta(minutes=1))
    paused = await scheduler.tick()
    response = await api.patch(f"/v1/connections/{connection_id}", json={"credentials": working})
    assert response.status_code == 200, response.text
    clock.advance(timedelta(minutes=1))
    resumed = await scheduler.tick()

    assert paused == 0
    assert resumed == 1
    assert len(dispatcher.dispatched) == 1


async def test_reconnect_clears_reauthorization(
    runtime: Runtime, clock: FakeClock, ns_sandbox: NetSuite, api: httpx.AsyncClient
) -> None:
    connection_id = await connect_netsuite(runtime, ns_sandbox.credentials)
    working = rotate_sandbox_token(ns_sandbox)
    monitor = await start_monitor(runtime, clock)
    await check_round(monitor, clock)

    response = await api.patch(f"/v1/connections/{connection_id}", json={"credentials": working})
    assert response.status_code == 200, response.text
    reconnected = response.json()
    run = await sync(runtime, connection_id)
    outcome = outcome_for(await check_round(monitor, clock), connection_id)

    assert reconnected["status"] == "active"
    assert reconnected["connection_token"].startswith("ilc_")
    assert run.status == "succeeded", run.error
    assert outcome.checked
    assert outcome.ok
    assert outcome.status == "active"
    assert not outcome.status_changed
    statuses = [event.data["status"] for event in await events_of(runtime, connection_id, STATUS_CHANGED)]
    assert statuses == ["reauthorization_required", "active"]
    assert len(await events_of(runtime, connection_id, REAUTHORIZATION_REQUIRED)) == 1
