"""A dump of the whole database contains no secret in plain text.

The test stores every kind of secret Interlink keeps, with values it knows:
connection credentials (through the API, checked live against the NetSuite
sandbox, and directly in the store), operator API keys, connection tokens
(current and revoked) and webhook signing secrets (current and replaced).
It then dumps every table, with SQLite's ``iterdump()`` or a ``SELECT`` of
every table on PostgreSQL, and searches the dump for each value as text and
as hexadecimal bytes, the form in which SQLite dumps a BLOB.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from interlink.crypto import generate_token, hash_token
from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.store.api_keys import insert_api_key
from interlink.store.connections import insert_connection
from tests.health.conftest import FakeClock, rotate_sandbox_token, sync
from tests.log_capture import register_secret
from tests.sandboxes.netsuite.conftest import NetSuite


@pytest.fixture
def settings(database_url: str, settings: Settings) -> Settings:
    """Return the shared settings with webhook URLs on the loopback address allowed; no delivery runs."""
    return settings.model_copy(update={"webhook_allow_private": True, "webhook_allow_http": True})


async def dump_database(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(str(url.database))
        try:
            return "\n".join(connection.iterdump())
        finally:
            connection.close()

    connection = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        lines = []
        for table in tables:
            rows = await connection.fetch(f'SELECT * FROM "{table["table_name"]}"')
            for row in rows:
                lines.append(" ".join(_as_text(value) for value in row.values()))
        return "\n".join(lines)
    finally:
        await connection.close()


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return f"{value.hex()} {value.decode('latin-1')}"
    return str(value)


async def test_database_dump_contains_no_secret(
    runtime: Runtime,
    clock: FakeClock,
    ns_sandbox: NetSuite,
    api: httpx.AsyncClient,
    operator_key: str,
    database_url: str,
) -> None:
    secrets = [operator_key]

    # Credentials through the API, checked live; the rotated token makes them unique to this test.
    credentials = rotate_sandbox_token(ns_sandbox)
    secrets += [credentials["token_secret"], credentials["consumer_secret"]]
    body = {"integration": "netsuite", "end_user": {"id": "customer-1"}, "credentials": credentials}
    created = await api.post("/v1/connections", json=body)
    assert created.status_code == 201, created.text
    connection_id = created.json()["id"]
    secrets.append(register_secret(created.json()["connection_token"]))
    replaced = await api.post(f"/v1/connections/{connection_id}/tokens")
    assert replaced.status_code == 201, replaced.text
    secrets.append(register_secret(replaced.json()["connection_token"]))
    run = await sync(runtime, connection_id)
    assert run.status == "succeeded", run.error

    # Credentials stored directly, as the sync engine stores renewed ones.
    password = register_secret(f"stored-password-{uuid.uuid4().hex}")
    async with runtime.db.write() as db:
        await insert_connection(
            db,
            integration="checked",
            auth_scheme="password",
            end_user_id="customer-2",
            end_user_name=None,
            end_user_email=None,
            credentials=runtime.credentials.encrypt({"password": password}),
            settings={},
        )
    secrets.append(password)

    # An API key with an expiry, besides the operator's.
    expiring_key = register_secret(generate_token("ilk"))
    async with runtime.db.write() as db:
        await insert_api_key(
            db,
            name="expiring",
            key_hash=hash_token(expiring_key),
            key_prefix=expiring_key[:8],
            expires_at=clock() + timedelta(days=30),
        )
    secrets.append(expiring_key)

    # A webhook endpoint whose secret was rotated, so both the current and the previous secret are stored.
    endpoint = await api.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hooks", "event_types": ["*"]}
    )
    assert endpoint.status_code == 201, endpoint.text
    secrets.append(register_secret(endpoint.json()["secret"]))
    rotated = await api.post(f"/v1/webhook-endpoints/{endpoint.json()['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    secrets.append(register_secret(rotated.json()["secret"]))

    dump = await dump_database(database_url)

    assert connection_id in dump  # the dump does contain the stored rows
    # Only the first characters are compared in the assertions, so a failure does not print a secret.
    lowered = dump.lower()
    in_text = [secret[:8] for secret in secrets if secret in dump]
    in_bytes = [secret[:8] for secret in secrets if secret.encode().hex() in lowered]
    assert in_text == []
    assert in_bytes == []
