"""Refreshing OAuth tokens: before expiry, after a 401, once across processes, and when revoked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.store.connections import get_connection
from interlink.store.events import list_events
from interlink.sync.requests import request_syncs
from tests.connect.conftest import BusinessCentral
from tests.connect.oauth_connection import oauth_connection, set_token_expiry, stored_credentials
from tests.sandboxes.dynamics_bc.conftest import sync

REPOSITORY = Path(__file__).resolve().parents[2]
WORKER_TIMEOUT = 90.0
# The token endpoint waits this long before responding, so that two workers
# that both decide to refresh are both inside their request at once.
TOKEN_DELAY = 2.0


async def connection_state(runtime: Runtime, connection_id: str) -> tuple[str, str | None]:
    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
    assert connection is not None
    return connection.status, connection.status_reason


async def reauthorization_events(runtime: Runtime, connection_id: str) -> list[Any]:
    async with runtime.db.read() as db:
        events = await list_events(
            db,
            after=None,
            limit=100,
            event_type="connection.reauthorization_required",
            connection_id=connection_id,
        )
    return list(events)


async def test_expiring_token_is_refreshed_before_use(
    runtime: Runtime, business_central: BusinessCentral
) -> None:
    connection_id = await oauth_connection(runtime, business_central)
    before = await stored_credentials(runtime, connection_id)
    await set_token_expiry(runtime, connection_id, datetime.now(UTC) + timedelta(minutes=1))

    run = await sync(runtime, connection_id, "vendor")
    assert run.status == "succeeded", run.error
    after = await stored_credentials(runtime, connection_id)
    assert business_central.token_requests("refresh_token") == 1
    assert after["refresh_token"] != before["refresh_token"]
    assert after["access_token"] != before["access_token"]
    assert datetime.fromisoformat(after["token_expires_at"]) > datetime.now(UTC) + timedelta(minutes=30)


async def test_rejected_token_is_refreshed_once(runtime: Runtime, business_central: BusinessCentral) -> None:
    connection_id = await oauth_connection(runtime, business_central)
    business_central.sandbox.tokens.clear()

    run = await sync(runtime, connection_id, "vendor")
    assert run.status == "succeeded", run.error
    assert business_central.token_requests("refresh_token") == 1
    stored = await stored_credentials(runtime, connection_id)
    assert stored["access_token"] in business_central.sandbox.tokens


async def test_revoked_grant_requires_reauthorization(
    runtime: Runtime, business_central: BusinessCentral
) -> None:
    connection_id = await oauth_connection(runtime, business_central)
    business_central.sandbox.identity.refresh_tokens.clear()
    business_central.sandbox.tokens.clear()

    first = await sync(runtime, connection_id, "vendor")
    assert first.status == "failed"
    assert first.error_code == "token_revoked"
    assert await connection_state(runtime, connection_id) == ("reauthorization_required", "token_revoked")
    second = await sync(runtime, connection_id, "location")
    assert second.status == "failed"
    async with runtime.db.read() as db:
        events = await list_events(
            db,
            after=None,
            limit=100,
            event_type="connection.reauthorization_required",
            connection_id=connection_id,
        )
    assert len(events) == 1


def _start_worker(
    settings: Settings, run_id: str, directory: Path, coordinated: bool
) -> subprocess.Popen[str]:
    config = {
        "database_url": settings.database_url,
        "secret_key": settings.secret_key,
        "run_id": run_id,
        "ready_path": str(directory / f"{run_id}.ready"),
        "go_path": str(directory / "go"),
        "coordinated": coordinated,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.connect.refresh_worker", json.dumps(config)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until_ready(workers: list[subprocess.Popen[str]], ready_paths: list[Path]) -> None:
    deadline = time.monotonic() + WORKER_TIMEOUT
    while not all(path.exists() for path in ready_paths):
        if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
            for worker in workers:
                worker.kill()
            errors = workers[0].communicate()[1][-2000:]
            pytest.fail(f"a worker process exited or did not get ready: {errors}")
        time.sleep(0.02)


async def _race(
    runtime: Runtime,
    settings: Settings,
    business_central: BusinessCentral,
    tmp_path: Path,
    *,
    coordinated: bool,
) -> tuple[str, list[dict[str, Any]]]:
    """Let two worker processes sync two entities of one connection whose token is about to expire."""
    connection_id = await oauth_connection(runtime, business_central)
    await set_token_expiry(runtime, connection_id, datetime.now(UTC) + timedelta(minutes=1))
    runs = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor", "location"],
        mode="incremental",
        trigger="manual",
        now=datetime.now(UTC),
    )
    token_path = f"/{business_central.tenant_id}/oauth2/v2.0/token"
    business_central.arm(kind="slow", delay=TOKEN_DELAY, count=2, path_prefix=token_path)

    workers = [_start_worker(settings, run.id, tmp_path, coordinated) for run in runs]
    await asyncio.to_thread(_wait_until_ready, workers, [tmp_path / f"{run.id}.ready" for run in runs])
    (tmp_path / "go").touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=WORKER_TIMEOUT)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return connection_id, results


async def test_two_processes_refresh_once(
    runtime: Runtime, settings: Settings, business_central: BusinessCentral, tmp_path: Path
) -> None:
    connection_id, results = await _race(runtime, settings, business_central, tmp_path, coordinated=True)

    assert [result["status"] for result in results] == ["succeeded", "succeeded"], results
    assert business_central.token_requests("refresh_token") == 1
    assert await connection_state(runtime, connection_id) == ("active", None)
    stored = await stored_credentials(runtime, connection_id)
    grant = business_central.sandbox.identity.refresh_tokens[stored["refresh_token"]]
    assert grant.redeemed is False, "the stored refresh token is the live one"


async def test_uncoordinated_processes_lose_the_grant(
    runtime: Runtime, settings: Settings, business_central: BusinessCentral, tmp_path: Path
) -> None:
    # The same race without the database lease: both workers present the same
    # refresh token and the sandbox, which rotates them, rejects the second.
    connection_id, results = await _race(runtime, settings, business_central, tmp_path, coordinated=False)

    assert business_central.token_requests("refresh_token") == 2
    assert sorted(result["status"] for result in results) == ["failed", "succeeded"], results
    failed = next(result for result in results if result["status"] == "failed")
    assert failed["error_code"] == "token_revoked"
    assert len(await reauthorization_events(runtime, connection_id)) == 1
