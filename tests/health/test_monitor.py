"""The health monitor's scheduling: which connections it checks, when, and in how many processes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from interlink.connectors.errors import SourceTimeout
from interlink.health import CHECK_INTERVAL, CLAIM_PERIOD, HealthMonitor
from interlink.model import format_utc
from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.store import Database
from interlink.store.connections import get_connection, transition_status
from interlink.store.health import claim_due_checks
from interlink.sync.engine import SyncEngine
from interlink.sync.requests import request_syncs
from tests.health.check_source import CheckSource, check_integration
from tests.health.conftest import (
    CHECK_STEP,
    FakeClock,
    HalfRandom,
    check_round,
    health_of,
    insert_checked_connection,
    lookup_with,
    start_monitor,
)


async def test_disabled_connection_is_not_checked(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource()
    enabled = await insert_checked_connection(runtime)
    disabled = await insert_checked_connection(runtime)
    async with runtime.db.write() as db:
        await transition_status(db, disabled, "disabled", reason="disabled_by_operator")
    monitor = await start_monitor(runtime, clock, lookup_with(check_integration(source)))

    for _ in range(3):
        await check_round(monitor, clock)

    assert source.checked == [enabled] * 3


async def test_first_checks_are_spread_over_interval(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource()
    connection_id = await insert_checked_connection(runtime)
    start = clock()
    await start_monitor(runtime, clock, lookup_with(check_integration(source)))

    health = await health_of(runtime, connection_id)

    # HalfRandom puts the first check in the middle of the interval.
    assert health.next_check_at == start + CHECK_INTERVAL / 2
    assert health.last_check_at is None
    assert source.checked == []


async def test_recent_successful_sync_skips_check(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource()
    integration = check_integration(source)
    connection_id = await insert_checked_connection(runtime)
    monitor = await start_monitor(runtime, clock, lookup_with(integration))
    engine = SyncEngine(
        runtime.db, runtime.credentials, clock=clock, integration_lookup=lookup_with(integration)
    )
    clock.advance(timedelta(minutes=5))
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="manual",
        now=clock(),
    )
    finished = await engine.execute_run(run.id)
    assert finished is not None
    assert finished.status == "succeeded", finished.error

    clock.advance(timedelta(minutes=3))  # the first check is now due, 3 minutes after the sync
    skipped = await monitor.tick()
    clock.advance(CHECK_STEP)  # the sync is now older than an interval
    checked = await monitor.tick()

    assert [(outcome.connection_id, outcome.checked) for outcome in skipped] == [(connection_id, False)]
    assert [(outcome.connection_id, outcome.checked) for outcome in checked] == [(connection_id, True)]
    assert source.checked == [connection_id]


async def test_success_after_failures_resets_count(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource(failure=SourceTimeout("no answer in 30 s"))
    connection_id = await insert_checked_connection(runtime)
    monitor = await start_monitor(runtime, clock, lookup_with(check_integration(source)))
    await check_round(monitor, clock)
    await check_round(monitor, clock)
    failing = await health_of(runtime, connection_id)

    source.failure = None
    await check_round(monitor, clock)
    recovered = await health_of(runtime, connection_id)

    assert failing.consecutive_failures == 2
    assert failing.failing_since is not None
    assert recovered.consecutive_failures == 0
    assert recovered.failing_since is None
    assert recovered.last_check_ok is True


async def test_renewed_credentials_are_stored(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource(renewed={"session": "renewed-session-0a1b2c3d"})
    connection_id = await insert_checked_connection(runtime)
    monitor = await start_monitor(runtime, clock, lookup_with(check_integration(source)))

    await check_round(monitor, clock)

    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
    assert connection is not None
    stored = runtime.credentials.decrypt(connection.credentials)
    assert stored["session"] == "renewed-session-0a1b2c3d"
    assert "password" in stored


async def test_abandoned_claim_expires(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource()
    connection_id = await insert_checked_connection(runtime)
    monitor = await start_monitor(runtime, clock, lookup_with(check_integration(source)))
    now = clock.advance(CHECK_STEP)
    # A process claims the check and dies before it records a result.
    async with runtime.db.write() as db:
        claimed = await claim_due_checks(db, now=now, claim_until=now + CLAIM_PERIOD, limit=10)

    clock.advance(CLAIM_PERIOD / 2)
    during_claim = await monitor.tick()
    clock.advance(CLAIM_PERIOD)
    after_claim = await monitor.tick()

    assert [item.health.connection_id for item in claimed] == [connection_id]
    assert during_claim == []
    assert [outcome.connection_id for outcome in after_claim] == [connection_id]
    assert source.checked == [connection_id]


async def test_two_processes_check_each_connection_once(
    runtime: Runtime, clock: FakeClock, settings: Settings
) -> None:
    source = CheckSource()
    lookup = lookup_with(check_integration(source))
    connection_ids = {await insert_checked_connection(runtime) for _ in range(8)}
    await start_monitor(runtime, clock, lookup)
    # Two stores on the same database act as two processes: they share no engine or lock.
    stores = [Database(settings.database_url) for _ in range(2)]
    monitors = [
        HealthMonitor(
            store, runtime.credentials, clock=clock, integration_lookup=lookup, rng=HalfRandom(), batch=3
        )
        for store in stores
    ]
    try:
        clock.advance(CHECK_STEP)
        results = await asyncio.gather(*(monitor.tick() for monitor in monitors))
    finally:
        for store in stores:
            await store.dispose()

    checked = [outcome.connection_id for outcomes in results for outcome in outcomes]
    assert sorted(checked) == sorted(connection_ids)
    assert sorted(source.checked) == sorted(connection_ids)


async def test_health_endpoint_reports_check(
    runtime: Runtime, clock: FakeClock, api: httpx.AsyncClient
) -> None:
    source = CheckSource(failure=SourceTimeout("no answer in 30 s"))
    connection_id = await insert_checked_connection(runtime)
    monitor = await start_monitor(runtime, clock, lookup_with(check_integration(source)))
    before = (await api.get(f"/v1/connections/{connection_id}/health")).json()

    checked_at = clock.advance(CHECK_STEP)
    await monitor.tick()
    response = await api.get(f"/v1/connections/{connection_id}/health")

    assert response.status_code == 200, response.text
    assert before["last_check_at"] is None
    assert before["last_error"] is None
    body = response.json()
    assert body["status"] == "active"
    assert body["status_reason"] is None
    assert body["last_check_at"] == format_utc(checked_at)
    assert body["last_check_ok"] is False
    assert body["consecutive_failures"] == 1
    assert body["last_error_code"] == "timeout"
    assert body["last_error"] == "no answer in 30 s"
    assert body["last_error_at"] == body["last_check_at"]
    assert body["next_check_at"] is not None
