"""A Matrix room as an event target: endpoints of kind matrix, posting to a real Synapse."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from interlink.connectors.http import create_client
from interlink.crypto import generate_token, hash_token
from interlink.runtime import Runtime
from interlink.store.api_keys import insert_api_key
from interlink.store.connections import get_connection, transition_status
from interlink.store.events import Event, append_event, list_events
from interlink.store.tables import deliveries, delivery_attempts
from interlink.store.webhooks import get_endpoint, insert_endpoint
from interlink.webhooks.delivery import DeliveryOutcome, WebhookDeliverer
from interlink.webhooks.matrix_messages import format_message
from interlink.webhooks.matrix_target import MatrixTarget, transaction_id
from interlink.webhooks.urls import UrlGuard
from interlink.webhooks.worker import create_delivery_worker
from tests.matrix.conftest import connect_user, fresh_user, sync
from tests.support.memory_source import insert_memory_connection
from tests.support.synapse import MatrixUser, SynapseServer
from tests.webhooks.support import FakeClock, queued_deliveries

# Bound for waiting on the running worker; a healthy run needs a fraction of it.
WAIT_SECONDS = 20.0
ERP = "con_erp"


@dataclass
class Room:
    """A room shared by a bot account, linked to Interlink, and a person who reads it."""

    bot: MatrixUser
    reader: MatrixUser
    room_id: str
    connection_id: str


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(runtime: Runtime, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    runtime.clock = clock
    token = generate_token("ilk")
    async with runtime.db.write() as db:
        await insert_api_key(
            db, name="tests", key_hash=hash_token(token), key_prefix=token[:8], expires_at=None
        )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=runtime.app(manage_lifecycle=False)),
        base_url="http://interlink.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


@pytest.fixture
async def room(runtime: Runtime, synapse: SynapseServer) -> Room:
    bot = await fresh_user(synapse, "plantbot")
    reader = await fresh_user(synapse, "rita")
    room_id = await bot.create_room("Plant alerts", invite=[reader])
    return Room(bot, reader, room_id, await connect_user(runtime, bot))


@pytest.fixture
async def deliverer(runtime: Runtime, clock: FakeClock) -> AsyncIterator[WebhookDeliverer]:
    """The deliverer of a worker built as every Interlink process builds it."""
    worker = create_delivery_worker(runtime.db, runtime.credentials, runtime.settings, clock=clock)
    yield worker.deliverer
    await worker.stop()


async def create_target(api: httpx.AsyncClient, room: Room, event_types: list[str]) -> dict[str, Any]:
    response = await api.post(
        "/v1/webhook-endpoints",
        json={
            "kind": "matrix",
            "connection_id": room.connection_id,
            "room_id": room.room_id,
            "event_types": event_types,
        },
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliver_due(
    runtime: Runtime, deliverer: WebhookDeliverer, clock: FakeClock
) -> list[DeliveryOutcome]:
    """Fan out the outbox and send one attempt of every due delivery."""
    outcomes = []
    for delivery in await queued_deliveries(runtime, clock):
        outcome = await deliverer.deliver(delivery.id)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


async def notices(room: Room) -> list[dict[str, Any]]:
    """Return the room's notices as the reader sees them, newest first."""
    events = await room.reader.room_events(room.room_id)
    return [event for event in events if event["content"].get("msgtype") == "m.notice"]


async def bodies(room: Room) -> list[str]:
    return [event["content"]["body"] for event in await notices(room)]


async def emit_erp_events(runtime: Runtime) -> None:
    """Write what an ERP connection's sync and failed login write, in one transaction."""
    async with runtime.db.write() as db:
        await append_event(
            db,
            "sync.started",
            {"run_id": "run_1", "entity": "purchase_order", "mode": "incremental", "trigger": "schedule"},
            connection_id=ERP,
        )
        await append_event(
            db,
            "sync.completed",
            {
                "run_id": "run_1",
                "entity": "purchase_order",
                "mode": "incremental",
                "counts": {"fetched": 15, "created": 12, "updated": 3, "unchanged": 0, "deleted": 0},
            },
            connection_id=ERP,
        )
        await append_event(
            db,
            "connection.reauthorization_required",
            {
                "connection_id": ERP,
                "status": "reauthorization_required",
                "status_reason": "credentials_invalid",
                "detail": "the password was changed",
            },
            connection_id=ERP,
        )


async def delivery_statuses(runtime: Runtime) -> list[str]:
    async with runtime.db.read() as db:
        return sorted(str(status) for status in (await db.execute(select(deliveries.c.status))).scalars())


async def attempts_of(runtime: Runtime, delivery_id: str) -> list[Any]:
    async with runtime.db.read() as db:
        query = (
            select(delivery_attempts)
            .where(delivery_attempts.c.delivery_id == delivery_id)
            .order_by(delivery_attempts.c.attempt)
        )
        return list((await db.execute(query)).mappings())


async def test_create_through_api(api: httpx.AsyncClient, room: Room) -> None:
    created = await create_target(api, room, ["sync.completed"])

    assert created["kind"] == "matrix"
    assert created["room_id"] == room.room_id
    assert created["connection_id"] == room.connection_id
    assert created["url"] == "matrix:roomid/" + room.room_id.removeprefix("!")
    assert created["secret"] is None
    assert created["status"] == "enabled"
    fetched = await api.get(f"/v1/webhook-endpoints/{created['id']}")
    assert fetched.json() == created


async def test_worker_posts_chosen_events(
    api: httpx.AsyncClient, runtime: Runtime, room: Room, clock: FakeClock
) -> None:
    await create_target(api, room, ["sync.completed", "connection.reauthorization_required"])
    worker = create_delivery_worker(runtime.db, runtime.credentials, runtime.settings, clock=clock)
    worker.start()
    try:
        await emit_erp_events(runtime)
        deadline = time.monotonic() + WAIT_SECONDS
        while await delivery_statuses(runtime) != ["succeeded", "succeeded"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker did not finish two deliveries within {WAIT_SECONDS:g} s")
            await asyncio.sleep(0.1)
    finally:
        await worker.stop()

    posted = {event["content"]["body"]: event for event in await notices(room)}
    assert sorted(posted) == [
        "Connection con_erp needs reauthorization (credentials_invalid)",
        "Sync completed: purchase_order on con_erp: 12 created, 3 updated",
    ]
    completed = posted["Sync completed: purchase_order on con_erp: 12 created, 3 updated"]
    assert completed["sender"] == room.bot.user_id
    assert completed["content"]["format"] == "org.matrix.custom.html"
    assert completed["content"]["formatted_body"] == (
        "<b>Sync completed</b>: <code>purchase_order</code> on <code>con_erp</code>: 12 created, 3 updated"
    )


async def test_sync_of_own_connection_posts(
    api: httpx.AsyncClient, runtime: Runtime, room: Room, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    await create_target(api, room, ["sync.completed", "records.changed"])

    await sync(runtime, room.connection_id, "conversation")
    first = await deliver_due(runtime, deliverer, clock)

    assert [outcome.status for outcome in first] == ["succeeded", "succeeded"]
    assert sorted(await bodies(room)) == [
        f"Records changed on {room.connection_id}: conversation 1 created",
        f"Sync completed: conversation on {room.connection_id}: 1 created",
    ]

    # The message sync reads the two notices back. Its records.changed would
    # be about them, so it is not posted, and only the completion is.
    run = await sync(runtime, room.connection_id, "message")
    second = await deliver_due(runtime, deliverer, clock)

    assert run.counts["created"] == 2
    assert [outcome.status for outcome in second] == ["succeeded"]
    assert (await bodies(room))[0] == f"Sync completed: message on {room.connection_id}: 2 created"
    async with runtime.db.read() as db:
        changed = await list_events(db, after=None, limit=100, event_type="records.changed")
    assert set(changed[-1].data["entities"]) == {"message"}
    assert len(await queued_deliveries(runtime, clock)) == 3


async def test_two_endpoints_one_room_post_once(
    api: httpx.AsyncClient, runtime: Runtime, room: Room, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    await create_target(api, room, ["sync.completed"])
    await create_target(api, room, ["*"])
    await emit_erp_events(runtime)

    outcomes = await deliver_due(runtime, deliverer, clock)

    assert len(outcomes) == 4
    assert {outcome.status for outcome in outcomes} == {"succeeded"}
    assert sorted(await bodies(room)) == [
        "Connection con_erp needs reauthorization (credentials_invalid)",
        "Sync completed: purchase_order on con_erp: 12 created, 3 updated",
        "Sync started: purchase_order on con_erp (incremental, schedule)",
    ]


class LosingTransport(httpx.AsyncBaseTransport):
    """Forwards every request to the homeserver, and while ``losing``, replaces a send's response with a 502.

    It acts as a proxy that loses the homeserver's response. The message was
    posted, but Interlink records a failure.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.losing = True
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if not (self.losing and request.method == "PUT" and "/send/" in request.url.path):
            return response
        await response.aread()
        await response.aclose()
        self.lost += 1
        return httpx.Response(502, text="bad gateway", request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_lost_answer_retry_posts_once(
    api: httpx.AsyncClient, runtime: Runtime, synapse: SynapseServer, room: Room, clock: FakeClock
) -> None:
    await create_target(api, room, ["sync.completed"])
    await emit_erp_events(runtime)
    transport = LosingTransport()
    first_process = WebhookDeliverer(
        runtime.db,
        runtime.credentials,
        guard=UrlGuard(),
        clock=clock,
        senders={
            "matrix": MatrixTarget(
                runtime.db,
                runtime.credentials,
                http_factory=lambda: create_client(transport=transport),
                timeout=3.0,
            )
        },
    )
    try:
        (failed,) = await deliver_due(runtime, first_process, clock)
    finally:
        await first_process.aclose()

    assert failed.status == "pending"
    assert failed.error is not None
    assert "timed out" in failed.error
    assert transport.lost >= 1
    assert await bodies(room) == ["Sync completed: purchase_order on con_erp: 12 created, 3 updated"]

    # Both sides restart: a new Interlink worker, and Synapse without its in-memory caches.
    await synapse.restart()
    second_process = create_delivery_worker(runtime.db, runtime.credentials, runtime.settings, clock=clock)
    clock.advance(timedelta(seconds=6))
    try:
        (retried,) = await deliver_due(runtime, second_process.deliverer, clock)
    finally:
        await second_process.stop()

    assert retried.status == "succeeded"
    assert retried.attempt == 2
    assert await bodies(room) == ["Sync completed: purchase_order on con_erp: 12 created, 3 updated"]
    log = await attempts_of(runtime, failed.delivery_id)
    assert [row["succeeded"] for row in log] == [False, True]
    assert log[1]["status_code"] == 200
    assert log[1]["error"] is None


async def test_revoked_token_fails_attempt(
    api: httpx.AsyncClient, runtime: Runtime, room: Room, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    await create_target(api, room, ["sync.completed"])
    await room.bot.logout()
    await emit_erp_events(runtime)
    async with runtime.db.read() as db:
        events_before = len(await list_events(db, after=None, limit=1000))

    (first,) = await deliver_due(runtime, deliverer, clock)

    assert first.status == "pending"
    assert first.error is not None
    assert first.error.startswith(f"token_revoked on connection {room.connection_id}: ")
    assert "reconnect the Matrix account" in first.error
    assert first.status_code == 401
    assert first.next_attempt_at is not None
    assert timedelta(seconds=4.5) <= first.next_attempt_at - clock() <= timedelta(seconds=5.5)

    clock.advance(timedelta(seconds=6))
    (second,) = await deliver_due(runtime, deliverer, clock)

    assert second.status == "pending"
    assert second.attempt == 2
    assert second.next_attempt_at is not None
    assert timedelta(minutes=4.5) <= second.next_attempt_at - clock() <= timedelta(minutes=5.5)
    async with runtime.db.read() as db:
        connection = await get_connection(db, room.connection_id)
        events_after = len(await list_events(db, after=None, limit=1000))
    assert connection is not None
    assert connection.status == "active"
    assert events_after == events_before
    log = await attempts_of(runtime, first.delivery_id)
    assert [row["error"] for row in log] == [first.error, second.error]


async def test_reauthorization_required_connection_not_called(
    api: httpx.AsyncClient, runtime: Runtime, room: Room, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    await create_target(api, room, ["sync.completed"])
    async with runtime.db.write() as db:
        await transition_status(db, room.connection_id, "reauthorization_required", reason="token_revoked")
    await emit_erp_events(runtime)

    (outcome,) = await deliver_due(runtime, deliverer, clock)

    assert outcome.status == "pending"
    assert outcome.error == (
        f"connection {room.connection_id} is reauthorization_required; reconnect it with new credentials"
    )
    assert outcome.status_code is None
    assert await bodies(room) == []


async def memory_connection(runtime: Runtime) -> str:
    return await insert_memory_connection(runtime)


async def test_create_rejects_invalid_fields(
    api: httpx.AsyncClient, runtime: Runtime, synapse: SynapseServer, room: Room
) -> None:
    stranger = await fresh_user(synapse, "sam")
    foreign_room = await stranger.create_room("Not for bots")
    other_kind = await memory_connection(runtime)
    valid = {
        "kind": "matrix",
        "connection_id": room.connection_id,
        "room_id": room.room_id,
        "event_types": ["*"],
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"room_id": foreign_room}, "room_id"),
        ({"room_id": "!unknown:interlink.test"}, "room_id"),
        ({"room_id": "#plant-alerts:interlink.test"}, "room_id"),
        ({"room_id": None}, "room_id"),
        ({"connection_id": other_kind}, "connection_id"),
        ({"connection_id": "con_missing"}, "connection_id"),
        ({"connection_id": None}, "connection_id"),
        ({"url": "https://127.0.0.1:9/hook"}, "url"),
        ({"event_types": ["sync.exploded"]}, "event_types"),
        ({"kind": "https", "url": "https://127.0.0.1:9/hook"}, "room_id"),
    ]
    for change, field in cases:
        response = await api.post("/v1/webhook-endpoints", json={**valid, **change})
        assert response.status_code == 422, (change, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in response.json()["errors"]] == [field], change

    listed = await api.get("/v1/webhook-endpoints")
    assert listed.json()["data"] == []


async def test_create_rejects_inactive_connection(
    api: httpx.AsyncClient, runtime: Runtime, room: Room
) -> None:
    async with runtime.db.write() as db:
        await transition_status(db, room.connection_id, "disabled", reason="disabled_by_operator")
    response = await api.post(
        "/v1/webhook-endpoints",
        json={
            "kind": "matrix",
            "connection_id": room.connection_id,
            "room_id": room.room_id,
            "event_types": ["*"],
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "connection_id"
    assert "disabled" in response.json()["detail"]


async def test_no_secret_and_no_url_change(api: httpx.AsyncClient, room: Room) -> None:
    created = await create_target(api, room, ["sync.completed"])
    path = f"/v1/webhook-endpoints/{created['id']}"

    rotated = await api.post(f"{path}/rotate-secret")
    moved = await api.patch(path, json={"url": "https://127.0.0.1:9/hook"})
    renamed = await api.patch(path, json={"event_types": ["sync.failed"]})

    assert rotated.status_code == 422
    assert rotated.json()["errors"][0]["field"] == "kind"
    assert moved.status_code == 422
    assert moved.json()["errors"][0]["field"] == "url"
    assert renamed.status_code == 200
    assert renamed.json()["event_types"] == ["sync.failed"]
    assert renamed.json()["room_id"] == room.room_id


async def test_worker_without_matrix_sender_fails_attempt(runtime: Runtime, clock: FakeClock) -> None:
    async with runtime.db.write() as db:
        endpoint = await insert_endpoint(
            db,
            url="matrix:roomid/abc:interlink.test",
            event_types=["*"],
            connection_id="con_chat",
            description=None,
            secret=b"",
            now=clock(),
            kind="matrix",
            room_id="!abc:interlink.test",
        )
    await emit_erp_events(runtime)
    deliverer = WebhookDeliverer(runtime.db, runtime.credentials, guard=UrlGuard(), clock=clock)
    try:
        outcomes = await deliver_due(runtime, deliverer, clock)
    finally:
        await deliverer.aclose()

    assert len(outcomes) == 3
    assert {outcome.status for outcome in outcomes} == {"pending"}
    assert {outcome.error for outcome in outcomes} == {
        "this worker has no sender for endpoints of kind 'matrix'"
    }
    async with runtime.db.read() as db:
        stored = await get_endpoint(db, endpoint.id)
    assert stored is not None
    assert stored.failing_since == clock()


def event(event_type: str, data: dict[str, Any], connection_id: str | None = ERP) -> Event:
    return Event(
        id="evt_1",
        type=event_type,
        connection_id=connection_id,
        data=data,
        created_at=FakeClock()(),
        seq=1,
        pk=1,
    )


MESSAGES: list[tuple[Event, str, str]] = [
    (
        event("sync.started", {"entity": "vendor", "mode": "full", "trigger": "manual"}),
        "Sync started: vendor on con_erp (full, manual)",
        "<b>Sync started</b>: <code>vendor</code> on <code>con_erp</code> (full, manual)",
    ),
    (
        event("sync.completed", {"entity": "vendor", "counts": {"created": 0, "updated": 0, "deleted": 0}}),
        "Sync completed: vendor on con_erp: no changes",
        "<b>Sync completed</b>: <code>vendor</code> on <code>con_erp</code>: no changes",
    ),
    (
        event("sync.failed", {"entity": "part", "error": "HTTP 500 <html>", "error_code": "unreachable"}),
        "Sync failed: part on con_erp: HTTP 500 <html> (unreachable)",
        "<b>Sync failed</b>: <code>part</code> on <code>con_erp</code>: HTTP 500 &lt;html&gt; (unreachable)",
    ),
    (
        event("records.changed", {"entities": {"part": {"counts": {"created": 2, "deleted": 1}}}}),
        "Records changed on con_erp: part 2 created, 1 deleted",
        "<b>Records changed</b> on <code>con_erp</code>: <code>part</code> 2 created, 1 deleted",
    ),
    (
        event("connection.created", {"integration": "tryton", "end_user_id": "acme"}),
        "Connection created: con_erp (tryton) for end user acme",
        "<b>Connection created</b>: <code>con_erp</code> (tryton) for end user <code>acme</code>",
    ),
    (
        event("connection.status_changed", {"status": "degraded", "status_reason": "timeout"}),
        "Connection status changed: con_erp is now degraded (timeout)",
        "<b>Connection status changed</b>: <code>con_erp</code> is now <code>degraded</code> (timeout)",
    ),
    (
        event("connection.deleted", {"integration": "tryton"}),
        "Connection deleted: con_erp (tryton)",
        "<b>Connection deleted</b>: <code>con_erp</code> (tryton)",
    ),
    (
        event("webhook_endpoint.disabled", {"endpoint_id": "whe_1", "reason": "failing", "detail": "5 days"}),
        "Webhook endpoint disabled: whe_1 (failing): 5 days",
        "<b>Webhook endpoint disabled</b>: <code>whe_1</code> (failing): 5 days",
    ),
    (
        event("records.archived", {}, connection_id=None),
        "Event records.archived",
        "<b>Event</b> <code>records.archived</code>",
    ),
]


def test_message_text_per_event_type() -> None:
    for source, body, formatted_body in MESSAGES:
        message = format_message(source)
        assert message.body == body, source.type
        assert message.formatted_body == formatted_body, source.type


def test_long_error_is_cut() -> None:
    message = format_message(event("sync.failed", {"entity": "part", "error": "x" * 5000, "error_code": "e"}))
    assert len(message.body) < 300
    assert message.body.endswith("... (e)")


def test_transaction_id_is_stable() -> None:
    assert transaction_id("evt_1") == transaction_id("evt_1")
    assert transaction_id("evt_1") != transaction_id("evt_2")
