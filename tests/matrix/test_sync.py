"""Syncing conversations, users and messages from a real Synapse through the engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from interlink.connectors.base import Page, ReadWindow
from interlink.connectors.matrix import timeline
from interlink.model import build_record_id
from interlink.runtime import Runtime
from interlink.store.runs import get_sync_state
from interlink.store.tables import records as records_table
from interlink.sync.engine import SyncEngine
from interlink.sync.requests import request_syncs
from tests.matrix.conftest import (
    SEEDED_MESSAGES,
    World,
    connect_user,
    fresh_user,
    records,
    sync,
)
from tests.support.synapse import SynapseServer


async def test_conversations_are_joined_rooms(runtime: Runtime, world: World) -> None:
    connection_id = await connect_user(runtime, world.alice)
    run = await sync(runtime, connection_id, "conversation")
    assert run.status == "succeeded"
    stored = await records(runtime, connection_id, "conversation")
    assert set(stored) == {world.direct_room, world.plant_room, world.maintenance_room, world.encrypted_room}

    plant = stored[world.plant_room].data
    assert plant["name"] == "Plant floor"
    assert plant["topic"] == "Line 3 status"
    assert plant["type"] == "room"
    assert plant["member_count"] == 2
    assert plant["encrypted"] is False
    assert stored[world.direct_room].data["type"] == "direct"
    assert stored[world.encrypted_room].data["encrypted"] is True


async def test_users_are_room_members(runtime: Runtime, world: World) -> None:
    connection_id = await connect_user(runtime, world.alice)
    await sync(runtime, connection_id, "user")
    stored = await records(runtime, connection_id, "user")
    assert set(stored) == {world.alice.user_id, world.bob.user_id}
    assert stored[world.bob.user_id].data["name"] == "Bob Builder"
    assert stored[world.bob.user_id].data["username"] == world.bob.user_id


async def test_first_sync_backfills_limited_timeline(
    runtime: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    backfills: list[str] = []
    original = timeline.MatrixClient.messages

    async def counting(self: timeline.MatrixClient, room_id: str, **kwargs: object) -> dict[str, object]:
        backfills.append(room_id)
        return await original(self, room_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(timeline.MatrixClient, "messages", counting)
    connection_id = await connect_user(runtime, world.alice)
    run = await sync(runtime, connection_id, "message")

    assert run.status == "succeeded"
    assert world.plant_room in backfills  # the /sync timeline alone was limited
    stored = await records(runtime, connection_id, "message")
    plant = {rid for rid, row in stored.items() if row.data["conversation"]["remote_id"] == world.plant_room}
    assert plant == set(world.plain_messages)
    assert len(plant) == SEEDED_MESSAGES


async def test_edit_redaction_and_relations(runtime: Runtime, world: World) -> None:
    connection_id = await connect_user(runtime, world.alice)
    await sync(runtime, connection_id, "message")
    stored = await records(runtime, connection_id, "message")

    edited = stored[world.original]
    assert edited.data["body"] == "pump 7 is leaking oil"
    assert edited.data["edited_at"] is not None
    assert edited.deleted is False
    assert stored[world.redacted].deleted is True
    assert stored[world.redacted].data["body"] is None

    reply = stored[world.reply].data
    assert reply["reply_to"] == {
        "id": build_record_id(connection_id, "message", world.original),
        "remote_id": world.original,
    }
    thread_reply = stored[world.thread_reply].data
    assert thread_reply["thread_root"]["remote_id"] == world.thread_root
    assert thread_reply["reply_to"] is None  # the reply there is only a fallback for old clients
    assert stored[world.html].data["body_html"] == "<b>done</b>"
    assert stored[world.notice].data["kind"] == "notice"
    assert stored[world.original].data["sender"]["remote_id"] == world.alice.user_id


async def test_encrypted_message_has_no_body(runtime: Runtime, world: World) -> None:
    connection_id = await connect_user(runtime, world.alice)
    await sync(runtime, connection_id, "message")
    encrypted = (await records(runtime, connection_id, "message"))[world.encrypted]
    assert encrypted.data["body"] is None
    assert encrypted.data["kind"] == "other"
    assert encrypted.raw is not None
    assert encrypted.raw["type"] == "m.room.encrypted"
    assert encrypted.raw["content"]["ciphertext"] == "AwgAEnAC"


async def test_resync_counts_everything_unchanged(runtime: Runtime, world: World) -> None:
    connection_id = await connect_user(runtime, world.alice)
    first = await sync(runtime, connection_id, "message", mode="full")
    second = await sync(runtime, connection_id, "message", mode="full")
    assert first.counts["created"] > SEEDED_MESSAGES
    assert second.counts["created"] == 0
    assert second.counts["updated"] == 0
    assert second.counts["deleted"] == 0
    assert second.counts["unchanged"] == first.counts["created"]


async def test_incremental_sync_applies_later_changes(runtime: Runtime, synapse: SynapseServer) -> None:
    carol = await fresh_user(synapse, "carol")
    dave = await fresh_user(synapse, "dave")
    room = await carol.create_room("Warehouse", invite=[dave])
    first = await carol.say(room, "forklift 2 needs a battery")
    connection_id = await connect_user(runtime, carol)
    await sync(runtime, connection_id, "message")
    await sync(runtime, connection_id, "conversation")

    later = await dave.say(room, "ordered")
    await carol.edit(room, first, "forklift 2 needs a new battery")
    await dave.redact(room, later)
    await carol.request("PUT", f"/rooms/{room}/state/m.room.topic", {"topic": "Stock and vehicles"})
    run = await sync(runtime, connection_id, "message")
    await sync(runtime, connection_id, "conversation")

    assert run.status == "succeeded"
    stored = await records(runtime, connection_id, "message")
    assert stored[first].data["body"] == "forklift 2 needs a new battery"
    assert stored[later].deleted is True
    assert run.counts["created"] == 1  # the later message, seen and redacted in one read
    conversation = (await records(runtime, connection_id, "conversation"))[room]
    assert conversation.data["topic"] == "Stock and vehicles"


async def test_incremental_gap_is_backfilled(
    runtime: Runtime, synapse: SynapseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    erin = await fresh_user(synapse, "erin")
    room = await erin.create_room("Night shift")
    await erin.say(room, "start")
    connection_id = await connect_user(runtime, erin)
    await sync(runtime, connection_id, "message")

    monkeypatch.setattr(timeline, "MESSAGE_FILTER", _with_timeline_limit(timeline.MESSAGE_FILTER, 5))
    sent = [await erin.say(room, f"reading {number}") for number in range(23)]
    run = await sync(runtime, connection_id, "message")
    assert run.counts["created"] == 23
    assert set(sent) <= set(await records(runtime, connection_id, "message"))


async def test_newly_joined_room_history_is_read(
    runtime: Runtime, synapse: SynapseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    quinn = await fresh_user(synapse, "quinn")
    rita = await fresh_user(synapse, "rita")
    await quinn.create_room("Own room")
    room = await rita.create_room("Older room")
    history = [await rita.say(room, f"before the join {number}") for number in range(6)]
    connection_id = await connect_user(runtime, quinn)
    await sync(runtime, connection_id, "message")  # the history is older than this cursor

    await rita.request("POST", f"/rooms/{room}/invite", {"user_id": quinn.user_id})
    await quinn.join(room)
    monkeypatch.setattr(timeline, "MESSAGE_FILTER", _with_timeline_limit(timeline.MESSAGE_FILTER, 2))
    run = await sync(runtime, connection_id, "message")

    assert run.status == "succeeded"
    assert set(history) <= set(await records(runtime, connection_id, "message"))
    assert run.counts["created"] == len(history)


async def test_left_room_is_deleted(runtime: Runtime, synapse: SynapseServer) -> None:
    frank = await fresh_user(synapse, "frank")
    stayed = await frank.create_room("Stayed")
    left = await frank.create_room("Left")
    connection_id = await connect_user(runtime, frank)
    await sync(runtime, connection_id, "conversation")
    await frank.leave(left)
    await sync(runtime, connection_id, "conversation")
    stored = await records(runtime, connection_id, "conversation")
    assert stored[left].deleted is True
    assert stored[left].data["name"] == "Left"
    assert stored[stayed].deleted is False


async def test_cursor_commits_with_last_page(runtime: Runtime, world: World) -> None:
    connection_id = await connect_user(runtime, world.alice)
    reader_pages: list[Page] = []
    connector_reader = timeline.MessageReader.read

    async def recording(
        self: timeline.MessageReader, cursor: str | None, window: ReadWindow
    ) -> AsyncIterator[Page]:
        async for page in connector_reader(self, cursor, window):
            reader_pages.append(page)
            yield page

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timeline.MessageReader, "read", recording)
        patch.setattr(timeline, "BACKFILL_LIMIT", 50)
        patch.setattr("interlink.connectors.matrix.connector.PAGE_SIZE", 40)
        await sync(runtime, connection_id, "message")

    assert len(reader_pages) > 1
    assert all(page.cursor is None for page in reader_pages[:-1])
    assert reader_pages[-1].cursor is not None
    async with runtime.db.read() as db:
        state = await get_sync_state(db, connection_id, "message")
    assert state is not None
    assert state.cursor == reader_pages[-1].cursor


async def test_crash_between_pages_resumes_without_loss(
    runtime: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection_id = await connect_user(runtime, world.alice)
    monkeypatch.setattr("interlink.connectors.matrix.connector.PAGE_SIZE", 40)
    pages_served = 0
    gate = asyncio.Event()
    connector_read = timeline.MessageReader.read

    async def hanging(
        self: timeline.MessageReader, cursor: str | None, window: ReadWindow
    ) -> AsyncIterator[Page]:
        nonlocal pages_served
        async for page in connector_read(self, cursor, window):
            if pages_served == 3:
                await gate.wait()  # the worker dies here, between pages 3 and 4
            pages_served += 1
            yield page

    monkeypatch.setattr(timeline.MessageReader, "read", hanging)
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["message"],
        mode="incremental",
        trigger="manual",
        now=runtime.clock(),
    )
    task = asyncio.create_task(runtime.engine.execute_run(run.id))
    for _ in range(500):
        await asyncio.sleep(0.01)
        if pages_served >= 3:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = await records(runtime, connection_id, "message")
    assert 0 < len(partial) < SEEDED_MESSAGES

    monkeypatch.setattr(timeline.MessageReader, "read", connector_read)
    later = _later_clock(runtime)
    other = SyncEngine(runtime.db, runtime.credentials, clock=later, owner="worker-b")
    resumed = await other.execute_run(run.id)
    assert resumed is not None
    assert resumed.status == "succeeded"
    assert resumed.attempts == 2

    complete = await records(runtime, connection_id, "message")
    assert set(world.plain_messages) <= set(complete)
    async with runtime.db.read() as db:
        total = (
            await db.execute(
                select(func.count())
                .select_from(records_table)
                .where(records_table.c.connection_id == connection_id, records_table.c.entity == "message")
            )
        ).scalar_one()
    assert total == len(complete)


def _later_clock(runtime: Runtime) -> Callable[[], datetime]:
    def later() -> datetime:
        return runtime.clock() + timedelta(minutes=5)  # the dead worker's lease expired

    return later


def _with_timeline_limit(sync_filter: dict[str, object], limit: int) -> dict[str, object]:
    room = dict(sync_filter["room"])  # type: ignore[call-overload]
    room["timeline"] = {**room["timeline"], "limit": limit}
    return {**sync_filter, "room": room}
