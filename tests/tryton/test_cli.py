"""The ``interlink`` command line, run as a real process against a real Tryton."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interlink.crypto import generate_secret_key
from tests.support.tryton_fixtures import TrytonDatabase

pytestmark = pytest.mark.tryton

INTERLINK = [sys.executable, "-m", "interlink.cli"]


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "INTERLINK_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "INTERLINK_SECRET_KEY": generate_secret_key(),
    }


def interlink(environment: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INTERLINK, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )


def test_api_key_lifecycle(environment: dict[str, str]) -> None:
    created = interlink(environment, "api-keys", "create", "--name", "reporting")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ilk_")
    assert created.stdout == key + "\n"  # the key alone, for scripts

    listed = interlink(environment, "api-keys", "list")
    assert "reporting" in listed.stdout
    assert key not in listed.stdout
    key_id = next(word for word in listed.stdout.split() if word.startswith("key_"))

    assert interlink(environment, "api-keys", "revoke", key_id).returncode == 0
    again = interlink(environment, "api-keys", "revoke", key_id)
    assert again.returncode == 1
    assert "no active API key" in again.stderr


def test_connection_create_and_sync(environment: dict[str, str], tryton: TrytonDatabase) -> None:
    created = interlink(
        environment,
        "connections", "create", "--integration", "tryton", "--end-user", "acme",
        stdin=json.dumps(tryton.password_credentials()),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    connection = json.loads(created.stdout)
    assert connection["connection_token"].startswith("ilc_")
    assert tryton.server.admin_password not in created.stdout + created.stderr

    listed = interlink(environment, "connections", "list")
    assert connection["id"] in listed.stdout

    synced = interlink(environment, "sync", connection["id"], "--entity", "purchase_order", "--full")
    assert synced.returncode == 0, synced.stderr
    assert "succeeded" in synced.stdout
    assert "30" in synced.stdout  # every seeded purchase fetched and created


def test_cli_errors_are_clear(environment: dict[str, str], tryton: TrytonDatabase) -> None:
    unknown = interlink(environment, "sync", "con_missing")
    assert unknown.returncode == 1
    assert "connection con_missing not found" in unknown.stderr

    rejected = interlink(
        environment,
        "connections", "create", "--integration", "tryton", "--end-user", "acme",
        stdin=json.dumps({**tryton.password_credentials(), "password": "wrong-password-1"}),
    )  # fmt: skip
    assert rejected.returncode == 2
    assert "rejected the credentials" in rejected.stderr
    assert "wrong-password-1" not in rejected.stderr

    no_key = interlink({**environment, "INTERLINK_SECRET_KEY": ""}, "connections", "list")
    assert no_key.returncode == 2
    assert "INTERLINK_SECRET_KEY is empty" in no_key.stderr
