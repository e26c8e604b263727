"""Rotating INTERLINK_SECRET_KEY: old values stay readable, a pass re-encrypts them with the new key."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from interlink.crypto import CredentialBox, generate_secret_key
from interlink.runtime import Runtime
from interlink.secrets_rotation import KeyRing, SecretRotation, encrypted_columns, rotate_all, rotation_status
from interlink.settings import Settings
from interlink.store import Database
from interlink.store.connections import insert_connection
from interlink.store.tables import connections, webhook_endpoints
from interlink.webhooks.endpoints import create_endpoint, open_secret, rotate_secret
from interlink.webhooks.urls import UrlGuard
from tests.health.conftest import FakeClock
from tests.log_capture import register_secret

INTERLINK = [sys.executable, "-m", "interlink.cli"]
CONNECTIONS = 5


async def store_secrets(
    db: Database, box: CredentialBox, clock: FakeClock, *, endpoints: int = 2
) -> dict[str, str]:
    """Store connections and webhook endpoints encrypted by ``box``; return each secret by row id."""
    stored: dict[str, str] = {}
    async with db.write() as connection:
        for number in range(CONNECTIONS):
            password = register_secret(f"old-key-password-{number}-{os.urandom(4).hex()}")
            row = await insert_connection(
                connection,
                integration="checked",
                auth_scheme="password",
                end_user_id=f"customer-{number}",
                end_user_name=None,
                end_user_email=None,
                credentials=box.encrypt({"password": password}),
                settings={},
            )
            stored[row.id] = password
    guard = UrlGuard(allow_http=True, allow_private=True)
    for _ in range(endpoints):
        endpoint, first = await create_endpoint(
            db, "http://127.0.0.1:9/hooks", ["*"], credentials=box, guard=guard, now=clock()
        )
        # A rotation fills previous_secret too, so both encrypted columns contain a value.
        _, second = await rotate_secret(db, endpoint.id, credentials=box, now=clock())
        stored[endpoint.id] = second
        stored[f"{endpoint.id}/previous"] = first
    return stored


async def read_secrets(db: Database, box: CredentialBox) -> dict[str, str]:
    """Decrypt every stored connection password and webhook secret with ``box``."""
    values: dict[str, str] = {}
    async with db.read() as connection:
        for row in await connection.execute(select(connections.c.id, connections.c.credentials)):
            values[row.id] = box.decrypt(row.credentials)["password"]
        endpoint = webhook_endpoints.c
        for row in await connection.execute(select(endpoint.id, endpoint.secret, endpoint.previous_secret)):
            values[row.id] = open_secret(box, row.secret)
            values[f"{row.id}/previous"] = open_secret(box, row.previous_secret)
    return values


async def stored_tokens(db: Database) -> list[bytes]:
    tokens: list[bytes] = []
    async with db.read() as connection:
        for target in encrypted_columns():
            query = select(target.column).where(target.column.is_not(None))
            tokens += [bytes(value) for value in (await connection.execute(query)).scalars()]
    return tokens


@pytest.fixture
def old_key() -> str:
    return generate_secret_key()


@pytest.fixture
def new_key() -> str:
    return generate_secret_key()


@pytest.fixture
def settings(database_url: str, old_key: str) -> Settings:
    return Settings(database_url=database_url, secret_key=old_key, lease_seconds=30)


async def test_old_values_readable_during_rotation(
    runtime: Runtime, clock: FakeClock, old_key: str, new_key: str
) -> None:
    stored = await store_secrets(runtime.db, runtime.credentials, clock)
    rotating = CredentialBox(f"{new_key},{old_key}")

    assert await read_secrets(runtime.db, rotating) == stored
    new_value = rotating.encrypt({"password": "written-during-rotation"})
    assert Fernet(new_key).decrypt(new_value)
    status = await rotation_status(runtime.db, KeyRing(f"{new_key},{old_key}"))
    assert status.per_key() == [0, len(stored)]
    assert not status.complete


async def test_rotation_moves_every_value_to_new_key(
    runtime: Runtime, clock: FakeClock, old_key: str, new_key: str
) -> None:
    stored = await store_secrets(runtime.db, runtime.credentials, clock)
    ring = KeyRing(f"{new_key},{old_key}")

    report = await rotate_all(runtime.db, ring, batch_size=2)

    assert report.rotated == len(stored)
    assert report.scanned == len(stored)
    assert report.unreadable == 0
    assert await read_secrets(runtime.db, CredentialBox(new_key)) == stored
    status = await rotation_status(runtime.db, ring)
    assert status.per_key() == [len(stored), 0]
    assert status.complete


async def test_second_pass_changes_nothing(
    runtime: Runtime, clock: FakeClock, old_key: str, new_key: str
) -> None:
    await store_secrets(runtime.db, runtime.credentials, clock)
    ring = KeyRing(f"{new_key},{old_key}")
    await rotate_all(runtime.db, ring, batch_size=3)
    after_first = await stored_tokens(runtime.db)

    again = await rotate_all(runtime.db, ring, batch_size=3)

    assert again.rotated == 0
    assert again.scanned == len(after_first)
    assert await stored_tokens(runtime.db) == after_first


async def test_value_of_unknown_key_is_reported(
    runtime: Runtime, clock: FakeClock, old_key: str, new_key: str
) -> None:
    stored = await store_secrets(runtime.db, runtime.credentials, clock)
    foreign = CredentialBox(generate_secret_key()).encrypt({"password": "from-another-installation"})
    async with runtime.db.write() as db:
        await insert_connection(
            db,
            integration="checked",
            auth_scheme="password",
            end_user_id="customer-foreign",
            end_user_name=None,
            end_user_email=None,
            credentials=foreign,
            settings={},
        )
    ring = KeyRing(f"{new_key},{old_key}")

    report = await rotate_all(runtime.db, ring, batch_size=4)
    status = await rotation_status(runtime.db, ring)

    assert report.unreadable == 1
    assert report.rotated == len(stored)
    assert status.unreadable == 1
    assert not status.complete
    assert foreign in await stored_tokens(runtime.db)


async def test_rotation_logs_progress(
    runtime: Runtime, clock: FakeClock, old_key: str, new_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    stored = await store_secrets(runtime.db, runtime.credentials, clock)
    rotation = SecretRotation(runtime.db, f"{new_key},{old_key}", batch_size=2)
    caplog.set_level(logging.INFO, logger="interlink.secrets_rotation")

    await rotation.run_pass()

    messages = [record.getMessage() for record in caplog.records]
    progress = [message for message in messages if message.startswith("secrets.rotation.progress")]
    # Two rows per batch: three batches of connections, one per webhook column.
    assert len(progress) == 5
    assert f"rotated={len(stored)} unreadable=0" in next(m for m in messages if "rotation.finished" in m)
    assert any(message.startswith("secrets.rotation.complete") for message in messages)


async def test_runtime_starts_rotation_with_several_keys(
    runtime: Runtime, clock: FakeClock, old_key: str, new_key: str, database_url: str
) -> None:
    # No webhook endpoints here: the runtime's delivery worker would send to them.
    stored = await store_secrets(runtime.db, runtime.credentials, clock, endpoints=0)
    rotating = Runtime(Settings(database_url=database_url, secret_key=f"{new_key},{old_key}"), clock=clock)
    await rotating.start(migrate=False)
    try:
        await asyncio.wait_for(rotating.secret_rotation.pass_finished.wait(), timeout=30)
    finally:
        await rotating.stop()

    assert rotating.secret_rotation.passes == 1
    assert await read_secrets(runtime.db, CredentialBox(new_key)) == stored


async def test_single_key_starts_no_rotation(runtime: Runtime, old_key: str) -> None:
    single = SecretRotation(runtime.db, old_key)

    single.start()
    await single.stop()

    assert not single.needed
    assert single.passes == 0


def cli(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INTERLINK, *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


async def test_cli_status_and_rotate(
    runtime: Runtime, clock: FakeClock, old_key: str, new_key: str, tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the command line is tested once, on SQLite")
    stored = await store_secrets(runtime.db, runtime.credentials, clock)
    environment = {
        **os.environ,
        "INTERLINK_DATABASE_URL": database_url,
        "INTERLINK_SECRET_KEY": f"{new_key},{old_key}",
    }

    before = await asyncio.to_thread(cli, environment, "secret-key", "status")
    rotated = await asyncio.to_thread(cli, environment, "secret-key", "rotate", "--batch-size", "2")
    after = await asyncio.to_thread(cli, environment, "secret-key", "status")

    assert before.returncode == 1, before.stderr
    assert f"{len(stored)} stored values still need a key after the first" in before.stderr
    assert "connections.credentials" in before.stdout
    assert rotated.returncode == 0, rotated.stderr
    assert f"re-encrypted {len(stored)} of {len(stored)} stored secrets" in rotated.stderr
    assert after.returncode == 0, after.stderr
    assert "the keys after it can be removed" in after.stderr
