"""Delivering to a real HTTPS receiver on 127.0.0.1: signatures, TLS, retries, leases, disabling."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from interlink.model import format_utc
from interlink.runtime import Runtime
from interlink.store.events import list_events
from interlink.store.tables import delivery_attempts
from interlink.store.webhooks import get_endpoint
from interlink.webhooks.delivery import WebhookDeliverer
from interlink.webhooks.endpoints import rotate_secret
from interlink.webhooks.urls import UrlGuard
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import (
    RECEIVER_NAME,
    FakeClock,
    LocalResolver,
    emit,
    make_endpoint,
    queued_deliveries,
    reload,
)


def verify(secret: str, request_body: bytes, headers: dict[str, str]) -> dict[str, object]:
    payload = Webhook(secret).verify(request_body, headers)
    assert isinstance(payload, dict)
    return payload


async def test_delivery_is_signed_and_verifiable(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    _, secret = await make_endpoint(runtime, guard, receiver.url())
    event_id = await emit(runtime, "sync.completed", {"run_id": "run_7", "entity": "vendor"}, "con_1")
    (delivery,) = await queued_deliveries(runtime, clock)

    outcome = await deliverer.deliver(delivery.id)

    assert outcome is not None
    assert outcome.status == "succeeded"
    (request,) = receiver.requests
    assert request.headers["webhook-id"] == event_id
    assert request.headers["content-type"] == "application/json"
    payload = verify(secret, request.body, request.headers)
    assert payload["type"] == "sync.completed"
    assert payload["data"] == {"run_id": "run_7", "entity": "vendor", "connection_id": "con_1"}
    async with runtime.db.read() as db:
        (event,) = await list_events(db, after=None, limit=10)
    assert payload["timestamp"] == format_utc(event.created_at)


async def test_delivery_marks_succeeded(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    await deliverer.deliver(delivery.id)

    stored = await reload(runtime, delivery.id)
    assert stored.status == "succeeded"
    assert stored.attempts == 1
    assert stored.last_status_code == 200
    assert stored.lease_owner is None


async def test_host_name_pinned_with_sni(
    runtime: Runtime,
    guard: UrlGuard,
    resolver: LocalResolver,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
    clock: FakeClock,
) -> None:
    await make_endpoint(runtime, guard, receiver.url(host=RECEIVER_NAME))
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)

    outcome = await deliverer.deliver(delivery.id)

    assert outcome is not None
    assert outcome.error is None
    assert outcome.status == "succeeded"
    assert receiver.requests[0].headers["host"] == f"{RECEIVER_NAME}:{receiver.port}"
    assert RECEIVER_NAME in resolver.calls


async def test_certificate_for_other_name_fails(
    runtime: Runtime,
    guard: UrlGuard,
    deliverer: WebhookDeliverer,
    clock: FakeClock,
    ca: trustme.CA,
    tmp_path: Path,
) -> None:
    server = Receiver(ca.issue_cert("other.test"), tmp_path)
    server.start()
    try:
        await make_endpoint(runtime, guard, server.url())
        await emit(runtime)
        (delivery,) = await queued_deliveries(runtime, clock)
        outcome = await deliverer.deliver(delivery.id)
    finally:
        server.close()

    assert outcome is not None
    assert outcome.status == "pending"
    assert outcome.error is not None
    assert "certificate verification failed" in outcome.error
    assert server.requests == []


async def test_untrusted_ca_fails(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, clock: FakeClock
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    sender = WebhookDeliverer(runtime.db, runtime.credentials, guard=guard, clock=clock)
    try:
        outcome = await sender.deliver(delivery.id)
    finally:
        await sender.aclose()

    assert outcome is not None
    assert outcome.error is not None
    assert "certificate verification failed" in outcome.error
    assert receiver.requests == []


async def test_retry_resends_same_body_with_fresh_timestamp(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    _, secret = await make_endpoint(runtime, guard, receiver.url())
    event_id = await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    receiver.answer(500)

    first = await deliverer.deliver(delivery.id)
    assert first is not None
    assert first.status == "pending"
    assert first.error == "HTTP 500"
    assert first.next_attempt_at is not None
    assert clock() + timedelta(seconds=4.5) <= first.next_attempt_at <= clock() + timedelta(seconds=5.5)

    assert await deliverer.deliver(delivery.id) is None  # not due yet
    clock.advance(timedelta(seconds=6))
    second = await deliverer.deliver(delivery.id)

    assert second is not None
    assert second.status == "succeeded"
    assert second.attempt == 2
    failed, retried = receiver.requests
    assert failed.body == retried.body
    assert failed.headers["webhook-id"] == event_id
    assert retried.headers["webhook-id"] == event_id
    assert failed.headers["webhook-timestamp"] != retried.headers["webhook-timestamp"]
    assert failed.headers["webhook-signature"] != retried.headers["webhook-signature"]
    verify(secret, failed.body, failed.headers)
    verify(secret, retried.body, retried.headers)


async def test_retry_after_postpones_retry(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    receiver.answer(503, {"Retry-After": "120"})

    outcome = await deliverer.deliver(delivery.id)

    assert outcome is not None
    assert outcome.next_attempt_at is not None
    assert outcome.next_attempt_at >= clock() + timedelta(seconds=120)
    clock.advance(timedelta(seconds=60))
    assert await deliverer.deliver(delivery.id) is None


async def test_non_2xx_answers_are_failures(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    for status in (302, 400, 401, 404, 429):
        receiver.answer(status, {"Location": "https://127.0.0.1:1/elsewhere"} if status == 302 else None)
        outcome = await deliverer.deliver(delivery.id)
        assert outcome is not None
        assert outcome.status == "pending"
        assert outcome.status_code == status
        clock.advance(timedelta(hours=15))
    assert len(receiver.requests) == 5


async def test_retries_exhausted_marks_failed(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    attempts = deliverer.schedule.max_attempts
    receiver.answer(500, times=attempts)

    outcomes = []
    for _ in range(attempts):
        outcome = await deliverer.deliver(delivery.id)
        assert outcome is not None
        outcomes.append(outcome)
        clock.advance(timedelta(hours=16))

    assert [outcome.status for outcome in outcomes] == ["pending"] * (attempts - 1) + ["failed"]
    assert outcomes[-1].next_attempt_at is None
    assert await deliverer.deliver(delivery.id) is None
    stored = await reload(runtime, delivery.id)
    assert stored.status == "failed"
    assert stored.attempts == attempts
    async with runtime.db.read() as db:
        logged = (await db.execute(select(delivery_attempts.c.status_code))).scalars().all()
    assert logged == [500] * attempts


async def test_schedule_spans_more_than_a_day(deliverer: WebhookDeliverer, clock: FakeClock) -> None:
    total = sum((delay for delay in deliverer.schedule.delays), timedelta())
    assert timedelta(hours=30) <= total <= timedelta(hours=40)
    delays = list(deliverer.schedule.delays)
    assert delays == sorted(delays)


async def test_gone_disables_endpoint(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    endpoint, _ = await make_endpoint(runtime, guard, receiver.url())
    watcher, _ = await make_endpoint(runtime, guard, receiver.url("/watcher"), ["webhook_endpoint.disabled"])
    await emit(runtime)
    await emit(runtime)
    first, second = await queued_deliveries(runtime, clock)
    receiver.answer(410)

    outcome = await deliverer.deliver(first.id)

    assert outcome is not None
    assert outcome.status == "failed"
    async with runtime.db.read() as db:
        stored = await get_endpoint(db, endpoint.id)
        events = await list_events(db, after=None, limit=100, event_type="webhook_endpoint.disabled")
    assert stored is not None
    assert stored.status == "disabled"
    assert stored.disabled_reason == "endpoint_gone"
    (event,) = events
    assert event.data["endpoint_id"] == endpoint.id
    assert (await reload(runtime, second.id)).status == "failed"
    notices = [row for row in await queued_deliveries(runtime, clock) if row.endpoint_id == watcher.id]
    assert len(notices) == 1


async def test_failing_for_days_disables_endpoint(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    endpoint, _ = await make_endpoint(runtime, guard, receiver.url())
    receiver.answer(500, times=3)
    await emit(runtime)
    (first,) = await queued_deliveries(runtime, clock)
    await deliverer.deliver(first.id)

    clock.advance(deliverer.disable_after - timedelta(hours=1))
    await emit(runtime)
    second = (await queued_deliveries(runtime, clock))[-1]
    await deliverer.deliver(second.id)
    async with runtime.db.read() as db:
        still = await get_endpoint(db, endpoint.id)
    assert still is not None
    assert still.status == "enabled"

    clock.advance(timedelta(hours=2))
    await emit(runtime)
    third = (await queued_deliveries(runtime, clock))[-1]
    await deliverer.deliver(third.id)
    async with runtime.db.read() as db:
        stored = await get_endpoint(db, endpoint.id)
        events = await list_events(db, after=None, limit=100, event_type="webhook_endpoint.disabled")
    assert stored is not None
    assert stored.status == "disabled"
    assert stored.disabled_reason == "failing"
    assert len(events) == 1


async def test_success_resets_failure_streak(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    endpoint, _ = await make_endpoint(runtime, guard, receiver.url())
    receiver.answer(500)
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    await deliverer.deliver(delivery.id)
    clock.advance(timedelta(minutes=1))
    await deliverer.deliver(delivery.id)

    async with runtime.db.read() as db:
        stored = await get_endpoint(db, endpoint.id)
    assert stored is not None
    assert stored.failing_since is None


async def test_timeout_is_a_failed_attempt(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, ca_bundle: str, clock: FakeClock
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    sender = WebhookDeliverer(
        runtime.db, runtime.credentials, guard=guard, ca_bundle=ca_bundle, clock=clock, timeout=0.5
    )
    receiver.hold_requests()
    try:
        outcome = await sender.deliver(delivery.id)
    finally:
        receiver.release()
        await sender.aclose()

    assert outcome is not None
    assert outcome.status == "pending"
    assert outcome.error == "timed out after 0.5 s"
    assert outcome.status_code is None


async def test_private_address_rejected_at_delivery(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, ca_bundle: str, clock: FakeClock
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    strict = UrlGuard(allow_private=False, resolver=guard.resolver)
    sender = WebhookDeliverer(runtime.db, runtime.credentials, guard=strict, ca_bundle=ca_bundle, clock=clock)
    try:
        outcome = await sender.deliver(delivery.id)
    finally:
        await sender.aclose()

    assert outcome is not None
    assert outcome.status == "pending"
    assert outcome.error is not None
    assert outcome.error.startswith("URL rejected: 127.0.0.1 is a loopback address")
    assert receiver.requests == []


async def test_rotation_signs_with_both_secrets(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    endpoint, old_secret = await make_endpoint(runtime, guard, receiver.url())
    _, new_secret = await rotate_secret(runtime.db, endpoint.id, credentials=runtime.credentials, now=clock())
    await emit(runtime)
    await emit(runtime)
    during, after = await queued_deliveries(runtime, clock)

    await deliverer.deliver(during.id)
    clock.advance(timedelta(hours=24, seconds=1))
    await deliverer.deliver(after.id)

    in_grace, past_grace = receiver.requests
    assert len(in_grace.headers["webhook-signature"].split(" ")) == 2
    verify(old_secret, in_grace.body, in_grace.headers)
    verify(new_secret, in_grace.body, in_grace.headers)
    assert len(past_grace.headers["webhook-signature"].split(" ")) == 1
    verify(new_secret, past_grace.body, past_grace.headers)
    with pytest.raises(WebhookVerificationError):
        verify(old_secret, past_grace.body, past_grace.headers)


async def test_delivery_sent_once_by_two_workers(
    runtime: Runtime,
    guard: UrlGuard,
    receiver: Receiver,
    deliverer: WebhookDeliverer,
    ca_bundle: str,
    clock: FakeClock,
) -> None:
    await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    other = WebhookDeliverer(
        runtime.db, runtime.credentials, guard=guard, ca_bundle=ca_bundle, clock=clock, owner="worker-b"
    )
    try:
        outcomes = await asyncio.gather(deliverer.deliver(delivery.id), other.deliver(delivery.id))
    finally:
        await other.aclose()

    assert sorted(outcome is None for outcome in outcomes) == [False, True]
    assert len(receiver.requests) == 1


async def test_disabled_endpoint_is_not_sent(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    from interlink.webhooks.endpoints import change_endpoint

    endpoint, _ = await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    await change_endpoint(runtime.db, endpoint.id, guard=guard, now=clock(), status="disabled")

    assert await deliverer.deliver(delivery.id) is None
    assert (await reload(runtime, delivery.id)).status == "failed"
    assert receiver.requests == []


async def test_body_is_the_exact_bytes_signed(
    runtime: Runtime, guard: UrlGuard, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    _, secret = await make_endpoint(runtime, guard, receiver.url())
    await emit(runtime, "records.changed", {"entities": {"vendor": {"count": 2, "cursor": "abc"}}, "ü": "ß"})
    (delivery,) = await queued_deliveries(runtime, clock)
    await deliverer.deliver(delivery.id)

    (request,) = receiver.requests
    assert json.loads(request.body)["data"]["ü"] == "ß"
    verify(secret, request.body, request.headers)
