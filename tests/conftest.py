"""Fixtures shared by every test: a fresh store per test on SQLite, and on PostgreSQL when configured.

Set ``INTERLINK_TEST_POSTGRES_URL`` (for example ``postgresql://postgres@127.0.0.1:5432/postgres``)
to run the store tests on PostgreSQL too; each test then gets a database of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interlink.crypto import generate_secret_key
from interlink.runtime import Runtime
from interlink.settings import Settings

pytest_plugins = ["tests.log_capture", "tests.support.tryton_fixtures"]

POSTGRES_URL = os.environ.get("INTERLINK_TEST_POSTGRES_URL")


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


@pytest.fixture(params=_backends())
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'interlink.sqlite3'}"
        return
    import asyncpg  # imported here so SQLite-only runs never need a server

    assert POSTGRES_URL is not None
    admin_url = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"interlink_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key=generate_secret_key(), lease_seconds=30)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A migrated store with the engine, and no background workers: tests drive runs themselves."""
    runtime = Runtime(settings, workers=False)
    await runtime.start(migrate=True)
    yield runtime
    await runtime.stop()
