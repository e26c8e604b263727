"""The sync engine against an in-memory source: counts, checkpoints, leases, deletions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from interlink.connectors.errors import SourceRejected, SourceUnavailable
from interlink.runtime import Runtime
from interlink.store.connections import get_connection
from interlink.store.events import list_events
from interlink.store.records import RecordFilter, list_records
from interlink.store.runs import RunRow, get_run, get_sync_state
from interlink.store.tables import records
from interlink.sync.engine import ProgressCallback, SyncEngine
from interlink.sync.requests import request_syncs
from tests.support.memory_source import (
    MemorySource,
    insert_memory_connection,
    lookup_for,
    memory_integration,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def source() -> MemorySource:
    source = MemorySource()
    for number in range(10):
        source.put(f"v{number:02d}", f"Vendor {number}", T0 - timedelta(days=1, minutes=number))
    return source


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def connection_id(runtime: Runtime) -> str:
    return await insert_memory_connection(runtime)


@pytest.fixture
def engine(runtime: Runtime, source: MemorySource, clock: Clock) -> SyncEngine:
    return SyncEngine(
        runtime.db,
        runtime.credentials,
        clock=clock,
        integration_lookup=lookup_for(memory_integration(source)),
        owner="worker-a",
    )


async def run_sync(
    runtime: Runtime,
    engine: SyncEngine,
    connection_id: str,
    mode: str = "incremental",
    progress: ProgressCallback | None = None,
) -> RunRow:
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode=mode,
        trigger="manual",
        now=engine.clock(),
    )
    finished = await engine.execute_run(run.id, progress=progress)
    assert finished is not None
    return finished


async def stored(
    runtime: Runtime, connection_id: str, *, include_deleted: bool = False
) -> dict[str, dict[str, object]]:
    async with runtime.db.read() as db:
        rows = await list_records(
            db,
            RecordFilter(entity="vendor", connection_id=connection_id, include_deleted=include_deleted),
            after=None,
            limit=10_000,
        )
    return {
        row.remote_id: {"name": row.data["name"], "deleted": row.deleted, "seq": row.change_seq}
        for row in rows
    }


async def test_first_sync_creates_every_record(
    runtime: Runtime, engine: SyncEngine, connection_id: str
) -> None:
    run = await run_sync(runtime, engine, connection_id)
    assert run.status == "succeeded"
    assert run.counts == {"fetched": 10, "created": 10, "updated": 0, "unchanged": 0, "deleted": 0}
    assert len(await stored(runtime, connection_id)) == 10


async def test_resync_counts_unchanged_without_rewriting(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource
) -> None:
    await run_sync(runtime, engine, connection_id, mode="full")
    before = await stored(runtime, connection_id)
    source.put("v03", "Vendor 3 renamed", T0)
    run = await run_sync(runtime, engine, connection_id, mode="full")
    after = await stored(runtime, connection_id)
    assert run.counts["updated"] == 1
    assert run.counts["unchanged"] == 9
    assert after["v03"]["name"] == "Vendor 3 renamed"
    assert after["v04"]["seq"] == before["v04"]["seq"]
    assert after["v03"]["seq"] > before["v03"]["seq"]


async def test_volatile_raw_fields_do_not_count_as_changes(
    runtime: Runtime, engine: SyncEngine, connection_id: str
) -> None:
    await run_sync(runtime, engine, connection_id, mode="full")
    run = await run_sync(runtime, engine, connection_id, mode="full")
    assert run.counts["unchanged"] == 10
    assert run.counts["updated"] == 0


async def test_incremental_reads_from_cursor_minus_lookback(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource
) -> None:
    await run_sync(runtime, engine, connection_id)
    source.put("v10", "Vendor 10", T0 + timedelta(minutes=1))
    # A record stamped inside the lookback, as by a transaction that committed late.
    source.put("v11", "Vendor 11", T0 - timedelta(days=1, minutes=-2))
    run = await run_sync(runtime, engine, connection_id)
    assert run.counts["created"] == 2
    assert run.counts["fetched"] < 10  # only the overlap is read again


async def test_crash_between_pages_resumes_without_loss(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource, clock: Clock
) -> None:
    source.hang_at_page = 3
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="manual",
        now=clock(),
    )
    task = asyncio.create_task(engine.execute_run(run.id))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if source.pages_served >= 3:
            break
    task.cancel()  # the worker dies between pages 2 and 3
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = await stored(runtime, connection_id)
    assert len(partial) == 6

    source.hang_at_page = None
    clock.now = T0 + timedelta(minutes=5)  # the dead worker's lease expired
    other = SyncEngine(
        runtime.db,
        runtime.credentials,
        clock=clock,
        integration_lookup=engine.integration_lookup,
        owner="worker-b",
    )
    resumed = await other.execute_run(run.id)
    assert resumed is not None
    assert resumed.status == "succeeded"
    assert resumed.attempts == 2
    assert set(await stored(runtime, connection_id)) == {f"v{n:02d}" for n in range(10)}
    async with runtime.db.read() as db:
        total = (await db.execute(select(func.count()).select_from(records))).scalar_one()
    assert total == 10


async def test_run_leased_by_another_worker_is_skipped(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource, clock: Clock
) -> None:
    source.hang_at_page = 1
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="manual",
        now=clock(),
    )
    task = asyncio.create_task(engine.execute_run(run.id))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if source.pages_served >= 1:
            break
    other = SyncEngine(
        runtime.db,
        runtime.credentials,
        clock=clock,
        integration_lookup=engine.integration_lookup,
        owner="worker-b",
    )
    assert await other.execute_run(run.id) is None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_lost_lease_rolls_back_page(runtime: Runtime, engine: SyncEngine, connection_id: str) -> None:
    def lose_lease(current: RunRow, counts: object) -> None:
        engine.owner = "worker-gone"  # the stored lease names another owner from now on

    finished = await run_sync(runtime, engine, connection_id, progress=lose_lease)

    assert finished.status == "running"  # left to the worker that holds the lease
    assert finished.counts["fetched"] == 3
    assert len(await stored(runtime, connection_id)) == 3  # the second page rolled back
    async with runtime.db.read() as db:
        state = await get_sync_state(db, connection_id, "vendor")
    assert state is not None
    assert state.cursor is not None
    assert '"id": "v07"' in state.cursor  # the first page's cursor, not the second's


async def test_second_trigger_returns_waiting_run(runtime: Runtime, connection_id: str, clock: Clock) -> None:
    first = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="api",
        now=clock(),
    )
    second = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="full",
        trigger="api",
        now=clock(),
    )
    assert first[0].id == second[0].id
    assert second[0].mode == "full"


async def test_queued_run_waits_while_another_runs(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource, clock: Clock
) -> None:
    source.hang_at_page = 1
    (first,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="api",
        now=clock(),
    )
    task = asyncio.create_task(engine.execute_run(first.id))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if source.pages_served >= 1:
            break
    (second,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="api",
        now=clock(),
    )
    assert second.id != first.id
    assert await engine.execute_run(second.id) is None  # blocked: the first still runs
    async with runtime.db.read() as db:
        waiting = await get_run(db, second.id)
    assert waiting is not None
    assert waiting.status == "queued"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_full_sync_marks_missing_records_deleted(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource
) -> None:
    await run_sync(runtime, engine, connection_id, mode="full")
    del source.records["v02"]
    run = await run_sync(runtime, engine, connection_id, mode="full")
    assert run.counts["deleted"] == 1
    visible = await stored(runtime, connection_id)
    everything = await stored(runtime, connection_id, include_deleted=True)
    assert "v02" not in visible
    assert everything["v02"]["deleted"] is True


async def test_reappearing_record_is_undeleted(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource
) -> None:
    await run_sync(runtime, engine, connection_id, mode="full")
    name, updated_at = source.records.pop("v02")
    await run_sync(runtime, engine, connection_id, mode="full")
    source.put("v02", name, updated_at)
    run = await run_sync(runtime, engine, connection_id, mode="full")
    assert run.counts["updated"] == 1
    assert (await stored(runtime, connection_id))["v02"]["deleted"] is False


async def test_failed_full_pass_deletes_nothing(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource
) -> None:
    await run_sync(runtime, engine, connection_id, mode="full")
    del source.records["v09"]
    source.fail_at_page = 3
    source.failure = SourceRejected
    run = await run_sync(runtime, engine, connection_id, mode="full")
    assert run.status == "failed"
    assert run.error is not None
    assert "injected failure" in run.error
    assert (await stored(runtime, connection_id))["v09"]["deleted"] is False


async def test_records_outside_history_window_are_not_deleted(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource
) -> None:
    source.put("old", "Old vendor", T0 - timedelta(days=400))
    await run_sync(runtime, engine, connection_id)  # incremental reads everything first
    run = await run_sync(runtime, engine, connection_id, mode="full")  # the window is 30 days
    assert run.counts["deleted"] == 0
    assert (await stored(runtime, connection_id))["old"]["deleted"] is False


async def test_retryable_failure_degrades_connection_once(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource
) -> None:
    source.fail_at_page = 1
    source.failure = SourceUnavailable
    for _ in range(3):
        run = await run_sync(runtime, engine, connection_id)
        assert run.status == "failed"
    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
        events = await list_events(db, after=None, limit=100, event_type="connection.status_changed")
    assert connection is not None
    assert connection.status == "degraded"
    assert connection.status_reason == "unreachable"
    assert len(events) == 1


async def test_wrong_password_requires_reauthorization_once(
    runtime: Runtime, engine: SyncEngine, connection_id: str, source: MemorySource
) -> None:
    source.password = "rotated-password"
    first = await run_sync(runtime, engine, connection_id)
    assert first.status == "failed"
    assert first.error_code == "credentials_invalid"
    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
    assert connection is not None
    assert connection.status == "reauthorization_required"
    second = await run_sync(runtime, engine, connection_id)
    assert second.error_code == "connection_reauthorization_required"
    async with runtime.db.read() as db:
        changed = await list_events(db, after=None, limit=100, event_type="connection.status_changed")
        required = await list_events(
            db, after=None, limit=100, event_type="connection.reauthorization_required"
        )
    assert len(changed) == 1
    assert len(required) == 1


async def test_success_stores_cursor_and_time(
    runtime: Runtime, engine: SyncEngine, connection_id: str, clock: Clock
) -> None:
    await run_sync(runtime, engine, connection_id)
    async with runtime.db.read() as db:
        state = await get_sync_state(db, connection_id, "vendor")
    assert state is not None
    assert state.cursor is not None
    assert state.last_success_at == clock()


async def test_records_changed_event_points_at_the_changes(
    runtime: Runtime, engine: SyncEngine, connection_id: str
) -> None:
    await run_sync(runtime, engine, connection_id)
    async with runtime.db.read() as db:
        (event,) = await list_events(db, after=None, limit=10, event_type="records.changed")
    change = event.data["entities"]["vendor"]
    assert change["count"] == 10
    assert isinstance(change["cursor"], str)
