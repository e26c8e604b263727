"""One real Synapse per test session, a seeded Matrix world, and helpers to sync a connection.

Without matrix-synapse installed these tests are skipped, or fail when
``INTERLINK_REQUIRE_ALL=1`` is set (as CI sets it). The seeded world belongs
to alice and bob and is read-only by convention: a test that changes
Matrix data registers users of its own, so tests do not see each other's
changes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from interlink.connections import create_connection
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.store.records import RecordFilter, StoredRecord, list_records
from interlink.store.runs import RunRow
from interlink.sync.requests import request_syncs
from tests.support.synapse import MatrixUser, SynapseServer, synapse_installed

SEEDED_MESSAGES = 220
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108  # mkdtemp makes a private directory there


def _require_synapse() -> None:
    if synapse_installed():
        return
    message = (
        "matrix-synapse is not installed in this virtualenv; install it with "
        "`.venv/bin/pip install matrix-synapse` to run the Matrix tests"
    )
    if os.environ.get("INTERLINK_REQUIRE_ALL") == "1":
        pytest.fail(message + " (INTERLINK_REQUIRE_ALL=1 makes this a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def synapse_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    _require_synapse()
    # Synapse syncs its SQLite file to disk for every event, so seeding runs
    # about three times faster on a memory file system. The data is disposable.
    if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
        directory = Path(tempfile.mkdtemp(prefix="interlink-synapse-", dir=SHARED_MEMORY))
        yield directory
        shutil.rmtree(directory, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("synapse")


@pytest.fixture(scope="session")
async def synapse(synapse_directory: Path) -> AsyncIterator[SynapseServer]:
    server = SynapseServer(synapse_directory)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class World:
    """The seeded accounts and rooms, and what a sync of alice's account must find."""

    alice: MatrixUser
    bob: MatrixUser
    direct_room: str
    plant_room: str
    maintenance_room: str
    encrypted_room: str
    original: str = ""
    edited: str = ""
    redacted: str = ""
    reply: str = ""
    thread_root: str = ""
    thread_reply: str = ""
    html: str = ""
    notice: str = ""
    encrypted: str = ""
    plain_messages: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
async def world(synapse: SynapseServer) -> World:
    alice = await MatrixUser.create(synapse, "alice")
    bob = await MatrixUser.create(synapse, "bob")
    await bob.request("PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bob Builder"})
    await alice.request("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice Operator"})
    world = World(
        alice=alice,
        bob=bob,
        direct_room=await alice.create_room(invite=[bob], direct=True),
        plant_room=await alice.create_room("Plant floor", topic="Line 3 status", invite=[bob]),
        maintenance_room=await alice.create_room("Maintenance", invite=[bob]),
        encrypted_room=await alice.create_room("Secrets", invite=[bob], encrypted=True),
    )
    # More than the timeline limit of one /sync, so the first sync gets a limited timeline.
    # Sent 20 at a time, because Synapse persists concurrent events of a room in batches.
    async with httpx.AsyncClient(timeout=60.0) as client:
        for start in range(0, SEEDED_MESSAGES, 20):
            batch = [
                (alice if number % 2 == 0 else bob).say(
                    world.plant_room, f"status report {number}", client=client
                )
                for number in range(start, min(start + 20, SEEDED_MESSAGES))
            ]
            world.plain_messages.extend(await asyncio.gather(*batch))

    room = world.maintenance_room
    world.original = await alice.say(room, "pump 7 is leaking")
    world.edited = world.original
    await alice.edit(room, world.original, "pump 7 is leaking oil")
    world.redacted = await bob.say(room, "wrong room, sorry")
    await bob.redact(room, world.redacted)
    world.reply = await bob.reply(room, world.original, "on my way")
    world.thread_root = await alice.say(room, "shift handover notes")
    world.thread_reply = await bob.reply_in_thread(room, world.thread_root, "valve replaced")
    world.html = await alice.send(
        room,
        {
            "msgtype": "m.text",
            "body": "done",
            "format": "org.matrix.custom.html",
            "formatted_body": "<b>done</b>",
        },
    )
    world.notice = await bob.send(room, {"msgtype": "m.notice", "body": "backup finished"})
    await alice.say(world.direct_room, "are you on site today?")
    world.encrypted = await alice.send(
        world.encrypted_room,
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC", "session_id": "s", "device_id": "D"},
        event_type="m.room.encrypted",
    )
    return world


async def fresh_user(synapse: SynapseServer, name: str, *, rate_limited: bool = False) -> MatrixUser:
    """Register a user that no other test uses, so this test's changes stay its own."""
    return await MatrixUser.create(synapse, f"{name}-{uuid.uuid4().hex[:8]}", rate_limited=rate_limited)


async def connect(
    runtime: Runtime,
    homeserver_url: str,
    credentials: dict[str, str],
    *,
    history_days: int = 365,
) -> str:
    """Create a Matrix connection the way the API does (credentials checked live) and return its id."""
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="matrix",
        end_user={"id": "customer-1"},
        credentials={"homeserver_url": homeserver_url, **credentials},
        auth_scheme=None,
        settings=ConnectionSettings(history_days=history_days),
    )
    return created.connection.id


async def connect_user(runtime: Runtime, user: MatrixUser) -> str:
    return await connect(runtime, user.url, {"access_token": user.access_token})


async def sync(runtime: Runtime, connection_id: str, entity: str, mode: str = "incremental") -> RunRow:
    """Queue one run and execute it in this process; return the finished run."""
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=[entity],
        mode=mode,
        trigger="manual",
        now=runtime.clock(),
    )
    finished = await runtime.engine.execute_run(run.id)
    assert finished is not None
    return finished


async def records(
    runtime: Runtime, connection_id: str, entity: str, *, include_deleted: bool = True
) -> dict[str, StoredRecord]:
    """Return the connection's stored records of ``entity`` by remote id."""
    async with runtime.db.read() as db:
        rows: Sequence[StoredRecord] = await list_records(
            db,
            RecordFilter(entity=entity, connection_id=connection_id, include_deleted=include_deleted),
            after=None,
            limit=100_000,
        )
    return {row.remote_id: row for row in rows}
