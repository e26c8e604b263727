"""``POST /v1/messages`` through the HTTP API, sending to a real Synapse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from interlink.connections import create_connection
from interlink.crypto import generate_token, hash_token
from interlink.model import ConnectionSettings, build_record_id
from interlink.runtime import Runtime
from interlink.store.api_keys import insert_api_key
from interlink.store.events import list_events
from interlink.store.idempotency import get_idempotency_key
from tests.matrix.conftest import fresh_user, records, sync
from tests.support.synapse import MatrixUser, SynapseServer


@dataclass
class Chat:
    """A room of two fresh users, linked to Interlink through the first one's account."""

    user: MatrixUser
    other: MatrixUser
    room_id: str
    connection_id: str
    connection_token: str
    conversation_id: str


async def api_client(runtime: Runtime) -> httpx.AsyncClient:
    """Return a client of the runtime's API, authorized with a new operator key."""
    token = generate_token("ilk")
    async with runtime.db.write() as db:
        await insert_api_key(
            db, name="tests", key_hash=hash_token(token), key_prefix=token[:8], expires_at=None
        )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=runtime.app()),
        base_url="http://interlink.test",
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with await api_client(runtime) as client:
        yield client


@pytest.fixture
async def chat(runtime: Runtime, synapse: SynapseServer) -> Chat:
    user = await fresh_user(synapse, "nina")
    other = await fresh_user(synapse, "oscar")
    room_id = await user.create_room("Dispatch", invite=[other])
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="matrix",
        end_user={"id": "customer-2"},
        credentials={"homeserver_url": synapse.url, "access_token": user.access_token},
        auth_scheme=None,
        settings=ConnectionSettings(),
    )
    connection_id = created.connection.id
    await sync(runtime, connection_id, "conversation")
    return Chat(
        user=user,
        other=other,
        room_id=room_id,
        connection_id=connection_id,
        connection_token=created.token,
        conversation_id=build_record_id(connection_id, "conversation", room_id),
    )


async def bodies_in_room(chat: Chat) -> list[str]:
    return [event["content"].get("body", "") for event in await chat.other.room_events(chat.room_id)]


async def test_post_message_sends_and_stores(api: httpx.AsyncClient, runtime: Runtime, chat: Chat) -> None:
    response = await api.post(
        "/v1/messages",
        json={
            "conversation_id": chat.conversation_id,
            "body": "truck at gate 4",
            "body_html": "truck at <b>gate 4</b>",
        },
        headers={"Idempotency-Key": "gate-4"},
    )
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["body"] == "truck at gate 4"
    assert message["body_html"] == "truck at <b>gate 4</b>"
    assert message["conversation"] == {"id": chat.conversation_id, "remote_id": chat.room_id}
    assert message["sender"]["remote_id"] == chat.user.user_id
    assert message["integration"] == "matrix"
    assert message["remote_id"].startswith("$")
    assert await bodies_in_room(chat) == ["truck at gate 4"]
    stored = await records(runtime, chat.connection_id, "message")
    assert stored[message["remote_id"]].id == message["id"]
    async with runtime.db.read() as db:
        events = await list_events(db, after=None, limit=100, event_type="records.changed")
    (changed,) = [
        event
        for event in events
        if event.connection_id == chat.connection_id and "message" in event.data["entities"]
    ]
    assert changed.data["entities"]["message"]["counts"] == {"created": 1, "updated": 0, "deleted": 0}


async def test_retry_with_same_key_sends_once(api: httpx.AsyncClient, chat: Chat) -> None:
    request = {"conversation_id": chat.conversation_id, "body": "shift starts at 6"}
    first = await api.post("/v1/messages", json=request, headers={"Idempotency-Key": "shift-6"})
    second = await api.post("/v1/messages", json=request, headers={"Idempotency-Key": "shift-6"})
    assert first.status_code == 201
    assert second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.json()["id"] == first.json()["id"]
    assert await bodies_in_room(chat) == ["shift starts at 6"]


async def test_key_survives_restart_of_both_sides(
    runtime: Runtime, synapse: SynapseServer, chat: Chat
) -> None:
    request = {"conversation_id": chat.conversation_id, "body": "generator test at noon"}
    async with await api_client(runtime) as api:
        first = await api.post("/v1/messages", json=request, headers={"Idempotency-Key": "noon"})
    assert first.status_code == 201

    await synapse.restart()  # Synapse loses its transaction ids
    restarted = Runtime(runtime.settings, workers=False)  # a new Interlink process on the same store
    await restarted.start(migrate=False)
    try:
        async with await api_client(restarted) as api:
            second = await api.post("/v1/messages", json=request, headers={"Idempotency-Key": "noon"})
    finally:
        await restarted.stop()

    assert second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert await bodies_in_room(chat) == ["generator test at noon"]


async def test_next_sync_finds_written_record(api: httpx.AsyncClient, runtime: Runtime, chat: Chat) -> None:
    await chat.other.say(chat.room_id, "anyone near bay 2?")
    baseline = await sync(runtime, chat.connection_id, "message")
    assert baseline.counts["created"] == 1

    response = await api.post("/v1/messages", json={"conversation_id": chat.conversation_id, "body": "me"})
    assert response.status_code == 201
    run = await sync(runtime, chat.connection_id, "message")

    assert run.status == "succeeded"
    assert run.counts["fetched"] == 1
    assert run.counts["created"] == 0
    assert run.counts["updated"] == 0
    assert run.counts["unchanged"] == 1
    assert len(await records(runtime, chat.connection_id, "message")) == 2


async def test_reply_to_sets_relation(api: httpx.AsyncClient, runtime: Runtime, chat: Chat) -> None:
    question = await chat.other.say(chat.room_id, "is the crane free?")
    await sync(runtime, chat.connection_id, "message")
    question_id = build_record_id(chat.connection_id, "message", question)

    response = await api.post(
        "/v1/messages",
        json={"conversation_id": chat.conversation_id, "body": "yes", "reply_to_id": question_id},
    )
    assert response.status_code == 201, response.text
    assert response.json()["reply_to"] == {"id": question_id, "remote_id": question}
    (newest, *_) = await chat.other.room_events(chat.room_id)
    assert newest["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": question}}


async def test_reused_key_with_other_body_is_rejected(api: httpx.AsyncClient, chat: Chat) -> None:
    headers = {"Idempotency-Key": "reused"}
    first = await api.post(
        "/v1/messages", json={"conversation_id": chat.conversation_id, "body": "a"}, headers=headers
    )
    second = await api.post(
        "/v1/messages", json={"conversation_id": chat.conversation_id, "body": "b"}, headers=headers
    )
    assert first.status_code == 201
    assert second.status_code == 422
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["type"].endswith("/idempotency-key-reused")
    assert second.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await bodies_in_room(chat) == ["a"]


INVALID_BODIES: list[tuple[dict[str, object], str]] = [
    ({"body": "no conversation"}, "connection_id"),
    ({"conversation_id": "cnv_unknown", "body": "x"}, "conversation_id"),
    ({"conversation_id": "nonsense", "body": "x"}, "conversation_id"),
    ({"conversation_id": "CONVERSATION", "body": ""}, "body"),
    ({"conversation_id": "CONVERSATION"}, "body"),
    ({"conversation_id": "CONVERSATION", "body": "x", "kind": "emote"}, "kind"),
    ({"conversation_id": "CONVERSATION", "body": "x", "reply_to_id": "msg_unknown"}, "reply_to_id"),
    ({"conversation": {"id": "cnv_x", "remote_id": "!x"}, "body": "x"}, "conversation"),
]


async def test_invalid_body_names_field(api: httpx.AsyncClient, chat: Chat) -> None:
    for body, field in INVALID_BODIES:
        if body.get("conversation_id") == "CONVERSATION":
            body = {**body, "conversation_id": chat.conversation_id}
        response = await api.post("/v1/messages", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in response.json()["errors"]] == [field], body
    assert await bodies_in_room(chat) == []


async def test_connection_token_writes_own_connection(
    runtime: Runtime, synapse: SynapseServer, chat: Chat
) -> None:
    transport = httpx.ASGITransport(app=runtime.app())
    headers = {"Authorization": f"Bearer {chat.connection_token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://interlink.test", headers=headers
    ) as api:
        own = await api.post("/v1/messages", json={"conversation_id": chat.conversation_id, "body": "token"})
        foreign = await api.post("/v1/messages", json={"connection_id": "con_other", "body": "x"})
        stranger = await api.post(
            "/v1/messages",
            json={"conversation_id": build_record_id("con_other", "conversation", "!x"), "body": "x"},
        )
    assert own.status_code == 201, own.text
    assert foreign.status_code == 403
    assert stranger.status_code == 422
    assert stranger.json()["errors"][0]["field"] == "conversation_id"


async def test_idempotency_key_row_names_record(api: httpx.AsyncClient, runtime: Runtime, chat: Chat) -> None:
    response = await api.post(
        "/v1/messages",
        json={"conversation_id": chat.conversation_id, "body": "logged"},
        headers={"Idempotency-Key": "k1"},
    )
    async with runtime.db.read() as db:
        row = await get_idempotency_key(db, chat.connection_id, "k1")
    assert row is not None
    assert row.record_id == response.json()["id"]


async def test_revoked_token_write_requires_reauthorization(
    api: httpx.AsyncClient, runtime: Runtime, chat: Chat
) -> None:
    await chat.user.logout()
    response = await api.post("/v1/messages", json={"conversation_id": chat.conversation_id, "body": "lost"})
    assert response.status_code == 409
    connection = await api.get(f"/v1/connections/{chat.connection_id}")
    assert connection.json()["status"] == "reauthorization_required"
    assert connection.json()["status_reason"] == "token_revoked"
