"""The delivery worker: fan-out, claims across workers, wakeups, and surviving outages and kills."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.store.webhooks import DeliveryRow, claim_due_deliveries
from interlink.webhooks.delivery import WebhookDeliverer
from interlink.webhooks.fanout import fan_out
from interlink.webhooks.urls import UrlGuard
from interlink.webhooks.worker import DeliveryWorker
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import FakeClock, SigningClock, emit, make_endpoint, queued_deliveries

# Bounds for waiting on another thread or task; a healthy run needs a fraction of them.
WAIT_SECONDS = 20.0


async def wait_until(condition: Callable[[], object], description: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {WAIT_SECONDS:g} s waiting until {description}")
        await asyncio.sleep(0.02)


async def deliveries_now(runtime: Runtime, clock: FakeClock) -> list[DeliveryRow]:
    return await queued_deliveries(runtime, clock)


def new_worker(
    runtime: Runtime,
    guard: UrlGuard,
    ca_bundle: str,
    clock: FakeClock,
    owner: str,
    poll_interval: float = 3600.0,
) -> DeliveryWorker:
    deliverer = WebhookDeliverer(
        runtime.db,
        runtime.credentials,
        guard=guard,
        ca_bundle=ca_bundle,
        clock=clock,
        wall_clock=SigningClock(),
        owner=owner,
    )
    return DeliveryWorker(runtime.db, deliverer, clock=clock, concurrency=4, poll_interval=poll_interval)


@pytest.fixture
async def worker(
    runtime: Runtime, guard: UrlGuard, ca_bundle: str, clock: FakeClock
) -> AsyncIterator[DeliveryWorker]:
    running = new_worker(runtime, guard, ca_bundle, clock, "worker-a")
    running.start()
    yield running
    await running.stop()


async def test_fanout_matches_type_and_connection(
    runtime: Runtime, guard: UrlGuard, clock: FakeClock
) -> None:
    everything, _ = await make_endpoint(runtime, guard, "https://127.0.0.1:9/all")
    syncs, _ = await make_endpoint(
        runtime, guard, "https://127.0.0.1:9/syncs", ["sync.completed", "sync.failed"]
    )
    first = await emit(runtime, "sync.completed", connection_id="con_a")
    second = await emit(runtime, "records.changed", connection_id="con_b")

    queued = {(row.event_id, row.endpoint_id) for row in await queued_deliveries(runtime, clock)}

    assert queued == {
        (first, everything.id),
        (first, syncs.id),
        (second, everything.id),
    }


async def test_fanout_scopes_connection_endpoints(
    runtime: Runtime, guard: UrlGuard, clock: FakeClock, connection_id: str
) -> None:
    scoped, _ = await make_endpoint(runtime, guard, "https://127.0.0.1:9/scoped", ["*"], connection_id)
    own = await emit(runtime, "sync.completed", connection_id=connection_id)
    await emit(runtime, "sync.completed", connection_id="con_other")
    await emit(runtime, "sync.completed")

    queued = [(row.event_id, row.endpoint_id) for row in await queued_deliveries(runtime, clock)]

    assert queued == [(own, scoped.id)]


async def test_endpoint_gets_only_later_events(runtime: Runtime, guard: UrlGuard, clock: FakeClock) -> None:
    await emit(runtime)
    endpoint, _ = await make_endpoint(runtime, guard, "https://127.0.0.1:9/hook")
    later = await emit(runtime)

    queued = [(row.event_id, row.endpoint_id) for row in await queued_deliveries(runtime, clock)]

    assert queued == [(later, endpoint.id)]


async def test_fanout_runs_once_per_event(runtime: Runtime, guard: UrlGuard, clock: FakeClock) -> None:
    await make_endpoint(runtime, guard, "https://127.0.0.1:9/hook")
    for _ in range(3):
        await emit(runtime)

    counts = [await fan_out(runtime.db, now=clock()) for _ in range(3)]

    assert counts == [3, 0, 0]


async def test_concurrent_claims_are_disjoint(runtime: Runtime, guard: UrlGuard, clock: FakeClock) -> None:
    await make_endpoint(runtime, guard, "https://127.0.0.1:9/hook")
    for _ in range(40):
        await emit(runtime)
    queued = await queued_deliveries(runtime, clock)

    async def claim(owner: str) -> list[str]:
        claimed: list[str] = []
        for _ in range(10):
            async with runtime.db.write() as db:
                claimed += await claim_due_deliveries(
                    db, owner=owner, now=clock(), lease_until=clock() + timedelta(seconds=60), limit=3
                )
        return claimed

    first, second = await asyncio.gather(claim("worker-a"), claim("worker-b"))

    assert set(first).isdisjoint(second)
    assert sorted(first + second) == sorted(row.id for row in queued)


async def test_commit_wakes_worker(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, worker: DeliveryWorker
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await wait_until(lambda: worker.passes >= 1, "the worker's first pass ended")
    # The worker polls once an hour, so only the wakeup after commit can deliver this in time.
    event_id = await emit(runtime)

    await wait_until(lambda: receiver.requests, "the receiver got the event")

    assert receiver.requests[0].headers["webhook-id"] == event_id


async def test_down_receiver_gets_every_event_later(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, worker: DeliveryWorker, clock: FakeClock
) -> None:
    receiver.stop()
    await make_endpoint(runtime, guard, receiver.url())
    event_ids = [await emit(runtime, data={"number": number}) for number in range(20)]

    async def all_attempted() -> bool:
        rows = await deliveries_now(runtime, clock)
        return len(rows) == 20 and all(row.attempts == 1 for row in rows)

    await wait_for(all_attempted, "every delivery failed once")
    rows = await deliveries_now(runtime, clock)
    assert all(row.status == "pending" for row in rows)
    assert all((row.last_error or "").startswith("connection failed") for row in rows)

    receiver.start()
    clock.advance(timedelta(seconds=10))
    worker.wake()

    async def all_succeeded() -> bool:
        return all(row.status == "succeeded" for row in await deliveries_now(runtime, clock))

    await wait_for(all_succeeded, "every delivery succeeded")
    received = {request.headers["webhook-id"] for request in receiver.requests}
    assert received == set(event_ids)


async def test_killed_worker_loses_nothing(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, ca_bundle: str, clock: FakeClock
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    receiver.hold_requests()
    first = new_worker(runtime, guard, ca_bundle, clock, "worker-a")
    first.start()
    event_id = await emit(runtime)
    await wait_until(lambda: receiver.requests, "the first worker's request arrived")

    await first.stop()  # cancels the send in flight, as a crash would end it
    receiver.release()
    (delivery,) = await deliveries_now(runtime, clock)
    assert delivery.status == "pending"
    assert delivery.lease_owner == "worker-a"

    second = new_worker(runtime, guard, ca_bundle, clock, "worker-b")
    second.start()
    try:
        assert await second.run_once() == 0  # the dead worker's lease has not expired yet
        clock.advance(second.deliverer.lease + timedelta(seconds=1))
        await second.run_once()
        await second.wait_idle()
    finally:
        await second.stop()

    (delivered,) = await deliveries_now(runtime, clock)
    assert delivered.status == "succeeded"
    assert {request.headers["webhook-id"] for request in receiver.requests} == {event_id}


async def wait_for(condition: Callable[[], Awaitable[bool]], description: str) -> None:
    """Like ``wait_until``, for a condition that is a coroutine function."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {WAIT_SECONDS:g} s waiting until {description}")
        await asyncio.sleep(0.05)


async def test_runtime_runs_delivery_worker(settings: Settings, ca_bundle: str, receiver: Receiver) -> None:
    configured = settings.model_copy(update={"webhook_allow_private": True, "webhook_ca_bundle": ca_bundle})
    runtime = Runtime(configured, workers=True)
    await runtime.start(migrate=True)
    try:
        guard = UrlGuard.from_settings(configured)
        _, secret = await make_endpoint(runtime, guard, receiver.url())
        event_id = await emit(runtime)
        await wait_until(lambda: receiver.requests, "the runtime's worker delivered the event")
    finally:
        await runtime.stop()

    (request,) = receiver.requests
    assert request.headers["webhook-id"] == event_id
    Webhook(secret).verify(request.body, request.headers)
