"""Replacing a connection token, and API keys that expire."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from interlink.crypto import generate_secret_key, generate_token, hash_token
from interlink.runtime import Runtime
from interlink.store.api_keys import insert_api_key
from interlink.store.connections import issue_connection_token
from tests.health.conftest import FakeClock, insert_checked_connection
from tests.log_capture import register_secret

INTERLINK = [sys.executable, "-m", "interlink.cli"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_new_token_revokes_old_one(runtime: Runtime, api: httpx.AsyncClient) -> None:
    connection_id = await insert_checked_connection(runtime)
    old_token = register_secret(generate_token("ilc"))
    async with runtime.db.write() as db:
        await issue_connection_token(db, connection_id, hash_token(old_token))
    before = await api.get("/v1/connection", headers=bearer(old_token))

    response = await api.post(f"/v1/connections/{connection_id}/tokens")
    new_token = register_secret(response.json()["connection_token"])
    with_old = await api.get("/v1/connection", headers=bearer(old_token))
    with_new = await api.get("/v1/connection", headers=bearer(new_token))

    assert before.status_code == 200, before.text
    assert response.status_code == 201, response.text
    assert new_token.startswith("ilc_")
    assert new_token != old_token
    assert with_old.status_code == 401
    assert with_new.status_code == 200, with_new.text
    assert with_new.json()["id"] == connection_id


async def test_connection_token_cannot_issue_tokens(runtime: Runtime, api: httpx.AsyncClient) -> None:
    connection_id = await insert_checked_connection(runtime)
    token = register_secret(generate_token("ilc"))
    async with runtime.db.write() as db:
        await issue_connection_token(db, connection_id, hash_token(token))

    response = await api.post(f"/v1/connections/{connection_id}/tokens", headers=bearer(token))
    still_valid = await api.get("/v1/connection", headers=bearer(token))

    assert response.status_code == 403
    assert still_valid.status_code == 200


async def test_expired_api_key_is_rejected(
    runtime: Runtime, clock: FakeClock, api: httpx.AsyncClient
) -> None:
    key = register_secret(generate_token("ilk"))
    expires_at = clock() + timedelta(days=1)
    async with runtime.db.write() as db:
        await insert_api_key(
            db, name="expiring", key_hash=hash_token(key), key_prefix=key[:8], expires_at=expires_at
        )
    valid = await api.get("/v1/connections", headers=bearer(key))

    clock.advance(timedelta(days=1, seconds=1))
    expired = await api.get("/v1/connections", headers=bearer(key))

    assert valid.status_code == 200, valid.text
    assert expired.status_code == 401
    assert expired.headers["content-type"].startswith("application/problem+json")
    assert "expired" in expired.json()["detail"]
    assert expires_at.strftime("%Y-%m-%dT%H:%M:%S") in expired.json()["detail"]
    assert key not in expired.json()["detail"]


def cli(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INTERLINK, *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


async def test_api_keys_list_shows_expiry(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "INTERLINK_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.sqlite3'}",
        "INTERLINK_SECRET_KEY": generate_secret_key(),
    }

    expiring = await asyncio.to_thread(
        cli, environment, "api-keys", "create", "--name", "expiring", "--expires-in-days", "3"
    )
    lasting = await asyncio.to_thread(cli, environment, "api-keys", "create", "--name", "lasting")
    listed = await asyncio.to_thread(cli, environment, "api-keys", "list")

    assert expiring.returncode == 0, expiring.stderr
    assert lasting.returncode == 0, lasting.stderr
    register_secret(expiring.stdout.strip())
    register_secret(lasting.stdout.strip())
    lines = listed.stdout.splitlines()
    expiring_row = next(line for line in lines if " expiring " in line)
    lasting_row = next(line for line in lines if " lasting " in line)
    expected_day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    assert expected_day in expiring_row
    assert "never" in lasting_row
    assert expiring.stdout.strip() not in listed.stdout
