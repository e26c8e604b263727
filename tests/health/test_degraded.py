"""Failing health checks: degraded only after the threshold, once, and active again after a success."""

from __future__ import annotations

from datetime import timedelta

import httpx

from interlink.connectors.errors import PermissionDenied, SourceUnavailable
from interlink.model import format_utc
from interlink.runtime import Runtime
from tests.health.check_source import CheckSource, check_integration
from tests.health.conftest import (
    FakeClock,
    check_round,
    connect_netsuite,
    events_of,
    health_of,
    insert_checked_connection,
    lookup_with,
    netsuite_sandbox,
    outcome_for,
    start_monitor,
    status_of,
    sync,
)
from tests.sandboxes.netsuite.conftest import NetSuite

STATUS_CHANGED = "connection.status_changed"


async def test_unreachable_source_degrades_after_threshold_once(
    runtime: Runtime, clock: FakeClock, fast_netsuite: None
) -> None:
    with netsuite_sandbox() as sandbox:
        connection_id = await connect_netsuite(runtime, sandbox.credentials)
        # A long failure window, so only the count of failed checks can degrade the connection.
        monitor = await start_monitor(runtime, clock, failure_window=timedelta(hours=6))
    # The sandbox has stopped: its port refuses connections from now on.

    rounds = [outcome_for(await check_round(monitor, clock), connection_id) for _ in range(5)]

    assert [outcome.error_code for outcome in rounds] == ["unreachable"] * 5
    assert [outcome.status for outcome in rounds] == ["active", "active", "degraded", "degraded", "degraded"]
    assert [outcome.status_changed for outcome in rounds] == [False, False, True, False, False]
    assert await status_of(runtime, connection_id) == ("degraded", "unreachable")
    (changed,) = await events_of(runtime, connection_id, STATUS_CHANGED)
    assert changed.data["status"] == "degraded"
    assert changed.data["status_reason"] == "unreachable"
    assert (await health_of(runtime, connection_id)).consecutive_failures == 5


async def test_degraded_source_recovers_on_success(
    runtime: Runtime, clock: FakeClock, ns_sandbox: NetSuite, api: httpx.AsyncClient
) -> None:
    connection_id = await connect_netsuite(runtime, ns_sandbox.credentials)
    synced = await sync(runtime, connection_id)
    monitor = await start_monitor(runtime, clock)
    ns_sandbox.arm(kind="status", status=503, count=1000, path_prefix="/services/")
    for _ in range(3):
        await check_round(monitor, clock)
    degraded = await status_of(runtime, connection_id)

    ns_sandbox.admin.delete("/_sandbox/faults").raise_for_status()
    recovered = outcome_for(await check_round(monitor, clock), connection_id)

    assert degraded == ("degraded", "unreachable")
    assert recovered.ok
    assert recovered.status == "active"
    assert recovered.status_changed
    assert await status_of(runtime, connection_id) == ("active", None)
    statuses = [event.data["status"] for event in await events_of(runtime, connection_id, STATUS_CHANGED)]
    assert statuses == ["degraded", "active"]
    health = await health_of(runtime, connection_id)
    assert health.consecutive_failures == 0
    assert health.failing_since is None
    assert health.last_check_ok is True
    assert health.last_error_code == "unreachable"  # the last failure stays visible
    answer = (await api.get(f"/v1/connections/{connection_id}/health")).json()
    assert answer["status"] == "active"
    assert answer["last_check_ok"] is True
    assert answer["last_error_code"] == "unreachable"
    (vendor,) = answer["entities"]
    assert vendor["entity"] == "vendor"
    assert synced.finished_at is not None
    assert vendor["last_success_at"] == format_utc(synced.finished_at)


async def test_failing_for_window_degrades_before_threshold(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource(failure=SourceUnavailable("connection refused"))
    connection_id = await insert_checked_connection(runtime)
    monitor = await start_monitor(
        runtime,
        clock,
        lookup_with(check_integration(source)),
        failure_threshold=10,
        failure_window=timedelta(minutes=30),
    )

    first = outcome_for(await check_round(monitor, clock), connection_id)
    second = outcome_for(await check_round(monitor, clock), connection_id)
    third = outcome_for(await check_round(monitor, clock), connection_id)

    # Checks run about every 17 minutes here, so the third failure is 34 minutes after the first.
    assert (first.status, second.status, third.status) == ("active", "active", "degraded")
    assert len(await events_of(runtime, connection_id, STATUS_CHANGED)) == 1


async def test_permission_error_degrades_at_once(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource(failure=PermissionDenied("the role may not read vendors"))
    connection_id = await insert_checked_connection(runtime)
    monitor = await start_monitor(runtime, clock, lookup_with(check_integration(source)))

    outcome = outcome_for(await check_round(monitor, clock), connection_id)

    assert outcome.status == "degraded"
    assert outcome.status_changed
    assert await status_of(runtime, connection_id) == ("degraded", "permission_missing")


async def test_slow_check_fails_with_timeout(runtime: Runtime, clock: FakeClock) -> None:
    source = CheckSource(hang=True)
    connection_id = await insert_checked_connection(runtime)
    monitor = await start_monitor(
        runtime,
        clock,
        lookup_with(check_integration(source)),
        check_timeout=timedelta(milliseconds=50),
    )

    outcome = outcome_for(await check_round(monitor, clock), connection_id)

    assert outcome.error_code == "timeout"
    assert outcome.status == "active"  # one timeout is below the threshold
    health = await health_of(runtime, connection_id)
    assert health.consecutive_failures == 1
    assert health.last_error is not None
    assert "did not finish within 0.05 s" in health.last_error
