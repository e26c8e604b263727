"""The scheduler against a real store: due runs, no overlap, full syncs, pauses, catch-up, restarts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from interlink.connectors.base import Integration
from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.store.connections import delete_connection
from interlink.store.runs import claim_run, finish_run
from interlink.sync.dispatch import PRIORITY_SCHEDULED, LocalDispatcher, Reaper
from interlink.sync.engine import SyncEngine
from interlink.sync.requests import request_syncs
from interlink.sync.scheduler import FULL_SYNC_RETRY_DELAY, Scheduler
from tests.scheduler.conftest import (
    ENTITIES,
    T0,
    Clock,
    RecordingDispatcher,
    add_connection,
    finish_all,
    runs_of,
    schedules_of,
    set_settings,
    set_status,
)
from tests.support.memory_source import MemorySource, lookup_for


async def start_running(runtime: Runtime, run_id: str, clock: Clock) -> None:
    """Put a queued run into ``running``, as a worker that took its lease does."""
    async with runtime.db.write() as db:
        claimed = await claim_run(
            db, run_id, owner="worker-x", now=clock(), lease_until=clock() + timedelta(hours=1)
        )
    assert claimed is not None


async def finish_running(runtime: Runtime, run_id: str, clock: Clock) -> None:
    """End a run that ``start_running`` started."""
    counts = dict.fromkeys(("fetched", "created", "updated", "unchanged", "deleted"), 0)
    async with runtime.db.write() as db:
        assert await finish_run(db, run_id, owner="worker-x", status="succeeded", now=clock(), counts=counts)


async def test_missing_schedules_are_created(
    runtime: Runtime, scheduler: Scheduler, connection_id: str
) -> None:
    await scheduler.create_missing_schedules()
    schedules = await schedules_of(runtime, connection_id)
    assert set(schedules) == set(ENTITIES)
    for schedule in schedules.values():
        assert schedule.next_incremental_at == T0  # the first sync does not wait an interval
    assert schedules["asset"].next_full_at is None  # no full read
    next_full = schedules["vendor"].next_full_at
    assert next_full is not None
    assert T0 + timedelta(days=3, hours=12) <= next_full < T0 + timedelta(days=10, hours=12, minutes=5)


async def test_first_tick_queues_one_run_per_entity(
    runtime: Runtime, scheduler: Scheduler, dispatcher: RecordingDispatcher, connection_id: str
) -> None:
    assert await scheduler.tick() == 3
    runs = await runs_of(runtime, connection_id)
    assert sorted(run.entity for run in runs) == sorted(ENTITIES)
    assert {run.mode for run in runs} == {"incremental"}
    assert {run.trigger for run in runs} == {"schedule"}
    assert {run.status for run in runs} == {"queued"}
    assert sorted(dispatcher.dispatched) == sorted((run.id, PRIORITY_SCHEDULED) for run in runs)


async def test_tick_queues_nothing_until_due(
    runtime: Runtime, scheduler: Scheduler, engine: SyncEngine, connection_id: str, clock: Clock
) -> None:
    await scheduler.tick()
    await finish_all(runtime, engine, connection_id)
    assert await scheduler.tick() == 0

    schedules = await schedules_of(runtime, connection_id)
    first_due = min(schedule.next_incremental_at for schedule in schedules.values())
    assert first_due >= T0 + timedelta(minutes=7, seconds=30)
    clock.now = first_due - timedelta(microseconds=1)
    assert await scheduler.tick() == 0

    clock.now = first_due
    assert await scheduler.tick() >= 1
    due_entities = {
        entity for entity, schedule in schedules.items() if schedule.next_incremental_at <= clock()
    }
    queued = [run for run in await runs_of(runtime, connection_id) if run.status == "queued"]
    assert {run.entity for run in queued} == due_entities


async def test_no_run_beside_queued_manual_run(
    runtime: Runtime, scheduler: Scheduler, connection_id: str, clock: Clock
) -> None:
    (manual,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="manual",
        now=clock(),
    )
    assert await scheduler.tick() == 2
    vendor_runs = [run for run in await runs_of(runtime, connection_id) if run.entity == "vendor"]
    assert [run.id for run in vendor_runs] == [manual.id]
    assert vendor_runs[0].trigger == "manual"
    vendor = (await schedules_of(runtime, connection_id))["vendor"]
    assert vendor.next_incremental_at > clock()  # the slot counts as served


async def test_no_run_beside_running_run(
    runtime: Runtime, scheduler: Scheduler, connection_id: str, clock: Clock
) -> None:
    (manual,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="api",
        now=clock(),
    )
    await start_running(runtime, manual.id, clock)
    await scheduler.tick()
    vendor_runs = [run for run in await runs_of(runtime, connection_id) if run.entity == "vendor"]
    assert [(run.id, run.status) for run in vendor_runs] == [(manual.id, "running")]


async def test_full_sync_runs_when_due(
    runtime: Runtime, scheduler: Scheduler, engine: SyncEngine, connection_id: str, clock: Clock
) -> None:
    await scheduler.tick()
    await finish_all(runtime, engine, connection_id)
    before = await schedules_of(runtime, connection_id)
    vendor_full_at = before["vendor"].next_full_at
    assert vendor_full_at is not None
    clock.now = vendor_full_at
    await scheduler.tick()

    full_due = {
        entity
        for entity, schedule in before.items()
        if schedule.next_full_at and schedule.next_full_at <= clock()
    }
    assert "vendor" in full_due
    assert "asset" not in full_due  # no full read
    queued = [run for run in await runs_of(runtime, connection_id) if run.status == "queued"]
    assert {run.entity for run in queued if run.mode == "full"} == full_due
    after = (await schedules_of(runtime, connection_id))["vendor"]
    assert after.next_full_at is not None
    assert after.next_full_at >= clock() + timedelta(days=3, hours=12)
    assert after.next_incremental_at > clock()  # the full pass covers the incremental one


async def test_full_sync_turns_waiting_run_into_full(
    runtime: Runtime, scheduler: Scheduler, engine: SyncEngine, connection_id: str, clock: Clock
) -> None:
    await scheduler.tick()
    await finish_all(runtime, engine, connection_id)
    vendor = (await schedules_of(runtime, connection_id))["vendor"]
    assert vendor.next_full_at is not None
    clock.now = vendor.next_full_at
    (waiting,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="api",
        now=clock(),
    )
    await scheduler.tick()
    vendor_waiting = [
        run
        for run in await runs_of(runtime, connection_id)
        if run.entity == "vendor" and run.status == "queued"
    ]
    assert [(run.id, run.mode) for run in vendor_waiting] == [(waiting.id, "full")]


async def test_full_sync_waits_for_running_incremental(
    runtime: Runtime, scheduler: Scheduler, engine: SyncEngine, connection_id: str, clock: Clock
) -> None:
    await scheduler.tick()
    await finish_all(runtime, engine, connection_id)
    vendor = (await schedules_of(runtime, connection_id))["vendor"]
    assert vendor.next_full_at is not None
    clock.now = vendor.next_full_at
    (running,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="api",
        now=clock(),
    )
    await start_running(runtime, running.id, clock)
    await scheduler.tick()
    vendor_runs = [run for run in await runs_of(runtime, connection_id) if run.entity == "vendor"]
    assert [run.id for run in vendor_runs if run.status in ("queued", "running")] == [running.id]
    assert (await schedules_of(runtime, connection_id))[
        "vendor"
    ].next_full_at == clock() + FULL_SYNC_RETRY_DELAY

    await finish_running(runtime, running.id, clock)
    clock.now += FULL_SYNC_RETRY_DELAY
    await scheduler.tick()
    queued = [run for run in await runs_of(runtime, connection_id) if run.status == "queued"]
    assert [(run.entity, run.mode) for run in queued if run.entity == "vendor"] == [("vendor", "full")]


@pytest.mark.parametrize("status", ["reauthorization_required", "disabled"])
async def test_paused_connection_resumes_from_cursor(
    runtime: Runtime,
    scheduler: Scheduler,
    engine: SyncEngine,
    connection_id: str,
    clock: Clock,
    source: MemorySource,
    status: str,
) -> None:
    await scheduler.tick()
    await finish_all(runtime, engine, connection_id)
    await set_status(runtime, connection_id, status)

    clock.now = T0 + timedelta(days=1)
    assert await scheduler.tick() == 0
    assert all(run.status == "succeeded" for run in await runs_of(runtime, connection_id))

    source.put("v9", "Vendor 9", T0 + timedelta(hours=1))
    await set_status(runtime, connection_id, "active")
    assert await scheduler.tick() == 3
    queued = [run for run in await runs_of(runtime, connection_id) if run.status == "queued"]
    vendor = next(run for run in queued if run.entity == "vendor")
    assert vendor.mode == "incremental"
    finished = await engine.execute_run(vendor.id)
    assert finished is not None
    assert finished.counts["created"] == 1
    assert finished.counts["fetched"] < len(source.records)  # read from the stored cursor, not from scratch


async def test_catch_up_after_downtime_runs_once_per_entity(
    runtime: Runtime, scheduler: Scheduler, engine: SyncEngine, connection_id: str, clock: Clock
) -> None:
    await scheduler.tick()
    await finish_all(runtime, engine, connection_id)
    clock.now = T0 + timedelta(days=1)  # 96 intervals of PT15M missed

    assert await scheduler.tick() == 3
    assert await scheduler.tick() == 0
    runs = await runs_of(runtime, connection_id)
    assert len(runs) == 6
    for schedule in (await schedules_of(runtime, connection_id)).values():
        assert schedule.next_incremental_at >= clock() + timedelta(minutes=7, seconds=30)


async def test_restart_between_enqueue_and_run(
    runtime: Runtime,
    settings: Settings,
    scheduler: Scheduler,
    engine: SyncEngine,
    connection_id: str,
    clock: Clock,
) -> None:
    # The dispatcher only records, so the queued runs reach no worker: the process stops after the commit.
    assert await scheduler.tick() == 3

    restarted = Runtime(settings, clock=clock, workers=False)
    await restarted.start(migrate=False)
    try:
        redispatched = RecordingDispatcher()
        assert await Reaper(restarted.db, redispatched, clock=clock).reap_once() == 3
        run_ids = [run_id for run_id, _ in redispatched.dispatched]
        assert sorted(run_ids) == sorted(run.id for run in await runs_of(runtime, connection_id))
        other = SyncEngine(
            restarted.db,
            restarted.credentials,
            clock=clock,
            integration_lookup=engine.integration_lookup,
            owner="worker-after-restart",
        )
        for run_id in run_ids:
            finished = await other.execute_run(run_id)
            assert finished is not None
            assert finished.status == "succeeded"
        assert await scheduler.tick() == 0
    finally:
        await restarted.stop()
    runs = await runs_of(runtime, connection_id)
    assert len(runs) == 3
    assert {run.status for run in runs} == {"succeeded"}


async def test_enqueue_and_advance_commit_together(
    runtime: Runtime, scheduler: Scheduler, connection_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await scheduler.create_missing_schedules()

    async def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process stopped here")

    monkeypatch.setattr("interlink.sync.scheduler.update_schedules", fail)
    with pytest.raises(RuntimeError):
        await scheduler.tick()
    assert await runs_of(runtime, connection_id) == []
    assert {
        schedule.next_incremental_at for schedule in (await schedules_of(runtime, connection_id)).values()
    } == {T0}

    monkeypatch.undo()
    assert await scheduler.tick() == 3


async def test_disabled_entity_loses_its_schedule(
    runtime: Runtime, scheduler: Scheduler, engine: SyncEngine, connection_id: str, clock: Clock
) -> None:
    await scheduler.tick()
    await finish_all(runtime, engine, connection_id)
    await set_settings(runtime, connection_id, {"sync_frequency": "PT15M", "entities": ["vendor"]})

    clock.now = T0 + timedelta(hours=1)
    assert await scheduler.tick() == 1
    queued = [run for run in await runs_of(runtime, connection_id) if run.status == "queued"]
    assert [run.entity for run in queued] == ["vendor"]
    assert set(await schedules_of(runtime, connection_id)) == {"vendor"}


async def test_deleting_connection_removes_schedules(
    runtime: Runtime, scheduler: Scheduler, connection_id: str
) -> None:
    await scheduler.create_missing_schedules()
    async with runtime.db.write() as db:
        assert await delete_connection(db, connection_id)
    assert await schedules_of(runtime, connection_id) == {}


async def test_search_for_missing_schedules_passes_unschedulable_connections(
    runtime: Runtime, dispatcher: RecordingDispatcher, clock: Clock, integration: Integration
) -> None:
    # Connections of an integration that is not installed get no schedule, and come first in id order.
    for _ in range(3):
        await add_connection(runtime, integration="not_installed")
    known = await add_connection(runtime)

    narrow = Scheduler(
        runtime.db, dispatcher, clock=clock, batch=2, integration_lookup=lookup_for(integration)
    )
    await narrow.create_missing_schedules()
    assert await schedules_of(runtime, known) == {}
    await narrow.create_missing_schedules()
    assert set(await schedules_of(runtime, known)) == set(ENTITIES)


async def test_manual_runs_are_served_before_scheduled_ones(
    runtime: Runtime, engine: SyncEngine, connection_id: str, clock: Clock, integration: Integration
) -> None:
    executed: list[str] = []

    async def execute(run_id: str) -> None:
        executed.append(run_id)

    local = LocalDispatcher(execute, concurrency=1)
    scheduler = Scheduler(runtime.db, local, clock=clock, integration_lookup=lookup_for(integration))
    await scheduler.tick()  # three scheduled runs wait in the dispatcher
    other = await add_connection(runtime)
    (manual,) = await request_syncs(
        runtime.db,
        local,
        connection_id=other,
        entities=["vendor"],
        mode="full",
        trigger="manual",
        now=clock(),
    )
    local.start()
    try:
        await asyncio.wait_for(local.join(), timeout=10)
    finally:
        await local.stop()
    assert executed[0] == manual.id
    assert len(executed) == 4


async def test_run_queued_meanwhile_is_not_doubled(
    runtime: Runtime, scheduler: Scheduler, connection_id: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    (manual,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="manual",
        now=clock(),
    )

    async def none_seen(*args: object, **kwargs: object) -> list[object]:
        return []  # as if the manual run committed after the scheduler looked

    monkeypatch.setattr("interlink.sync.scheduler.active_runs", none_seen)
    assert await scheduler.tick() == 2
    vendor_runs = [run for run in await runs_of(runtime, connection_id) if run.entity == "vendor"]
    assert [run.id for run in vendor_runs] == [manual.id]


async def test_entity_enabled_outside_api_gets_schedule(
    runtime: Runtime, scheduler: Scheduler, engine: SyncEngine, clock: Clock
) -> None:
    connection_id = await add_connection(runtime, {"sync_frequency": "PT15M", "entities": ["vendor"]})
    assert await scheduler.tick() == 1
    await finish_all(runtime, engine, connection_id)
    await set_settings(runtime, connection_id, {"sync_frequency": "PT15M"})  # every entity again

    clock.now = (await schedules_of(runtime, connection_id))["vendor"].next_incremental_at
    assert await scheduler.tick() == 1  # vendor is due, and the claim notices the new entities
    schedules = await schedules_of(runtime, connection_id)
    assert set(schedules) == set(ENTITIES)
    assert schedules["part"].next_incremental_at == clock()

    assert await scheduler.tick() == 2
    queued = [run for run in await runs_of(runtime, connection_id) if run.status == "queued"]
    assert sorted(run.entity for run in queued) == ["asset", "part", "vendor"]
