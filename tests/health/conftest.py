"""Fixtures for the health and secret tests: a shared fake clock, a runtime on it, and helpers.

The runtime here replaces the shared one so that the sync engine, the API and
the health monitor all read the same clock, which tests move by hand.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from interlink.api.app import create_app
from interlink.connections import create_connection
from interlink.connectors.base import Integration
from interlink.connectors.netsuite import use_tuning
from interlink.connectors.registry import get_integration
from interlink.crypto import generate_token, hash_token
from interlink.health import CheckOutcome, HealthMonitor
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.sandbox.netsuite import create_app as create_netsuite_app
from interlink.settings import Settings
from interlink.store.api_keys import insert_api_key
from interlink.store.connections import get_connection, insert_connection
from interlink.store.events import Event, list_events
from interlink.store.health import HealthRow, get_health
from interlink.store.runs import RunRow
from interlink.sync.requests import request_syncs
from tests.health.check_source import NAME
from tests.log_capture import register_secret
from tests.sandboxes.netsuite.conftest import FAST_TUNING, NetSuite
from tests.support.sandbox_server import serve

IntegrationLookup = Callable[[str], Integration | None]

# Longer than the check interval plus its largest jitter, so one step makes every check due.
CHECK_STEP = timedelta(minutes=17)


class FakeClock:
    """A clock that tests move by hand, starting at the real time so sources accept signatures."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


class HalfRandom(random.Random):
    """A random source whose ``random()`` is always 0.5: first checks fall mid-interval, jitter is zero."""

    def random(self) -> float:
        return 0.5


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A migrated store with the engine on the fake clock, and no background workers."""
    runtime = Runtime(settings, clock=clock, workers=False)
    await runtime.start(migrate=True)
    yield runtime
    await runtime.stop()


async def start_monitor(
    runtime: Runtime, clock: FakeClock, lookup: IntegrationLookup = get_integration, **options: Any
) -> HealthMonitor:
    """Build a health monitor on the fake clock and tick once, which creates the health rows."""
    monitor = HealthMonitor(
        runtime.db,
        runtime.credentials,
        clock=clock,
        http_factory=runtime.http_factory,
        integration_lookup=lookup,
        rng=HalfRandom(),
        **options,
    )
    await monitor.tick()
    return monitor


async def check_round(monitor: HealthMonitor, clock: FakeClock) -> list[CheckOutcome]:
    """Move the clock past the next due check time and run one tick."""
    clock.advance(CHECK_STEP)
    return await monitor.tick()


def outcome_for(outcomes: list[CheckOutcome], connection_id: str) -> CheckOutcome:
    (outcome,) = [item for item in outcomes if item.connection_id == connection_id]
    return outcome


async def events_of(runtime: Runtime, connection_id: str, event_type: str) -> list[Event]:
    async with runtime.db.read() as db:
        return list(
            await list_events(db, after=None, limit=1000, event_type=event_type, connection_id=connection_id)
        )


async def status_of(runtime: Runtime, connection_id: str) -> tuple[str, str | None]:
    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
    assert connection is not None
    return connection.status, connection.status_reason


async def health_of(runtime: Runtime, connection_id: str) -> HealthRow:
    async with runtime.db.read() as db:
        health = await get_health(db, connection_id)
    assert health is not None
    return health


async def sync(runtime: Runtime, connection_id: str, entity: str = "vendor") -> RunRow:
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=[entity],
        mode="incremental",
        trigger="manual",
        now=runtime.clock(),
    )
    finished = await runtime.engine.execute_run(run.id)
    assert finished is not None
    return finished


@contextmanager
def netsuite_sandbox() -> Iterator[NetSuite]:
    """Serve a NetSuite sandbox on 127.0.0.1; the caller sets the connector tuning."""
    with (
        serve(create_netsuite_app(size=10, seed=5)) as server,
        httpx.Client(base_url=server.base_url) as admin,
    ):
        yield NetSuite(server, admin)


@pytest.fixture
def fast_netsuite() -> Iterator[None]:
    """Short NetSuite retry delays for the whole test, also after its sandbox stopped."""
    use_tuning(FAST_TUNING)
    yield
    use_tuning(None)


@pytest.fixture
def ns_sandbox(fast_netsuite: None) -> Iterator[NetSuite]:
    with netsuite_sandbox() as sandbox:
        yield sandbox


def rotate_sandbox_token(sandbox: NetSuite) -> dict[str, str]:
    """Rotate the sandbox's access token; return the credentials that work from now on."""
    response = sandbox.admin.post("/_sandbox/credentials/rotate")
    response.raise_for_status()
    rotated = response.json()
    register_secret(rotated["token_secret"])
    return {**sandbox.credentials, "token_id": rotated["token_id"], "token_secret": rotated["token_secret"]}


async def connect_netsuite(runtime: Runtime, credentials: dict[str, str]) -> str:
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="netsuite",
        end_user={"id": "customer-1"},
        credentials=credentials,
        auth_scheme=None,
        settings=ConnectionSettings(entities=["vendor"]),
    )
    register_secret(created.token)
    return created.connection.id


@pytest.fixture
async def operator_key(runtime: Runtime) -> str:
    key = register_secret(generate_token("ilk"))
    async with runtime.db.write() as db:
        await insert_api_key(db, name="tests", key_hash=hash_token(key), key_prefix=key[:8], expires_at=None)
    return key


@pytest.fixture
async def api(runtime: Runtime, operator_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An operator's client of the API app, called in process, on the fake clock."""
    app = create_app(runtime.services())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://interlink.test",
        headers={"Authorization": f"Bearer {operator_key}"},
    ) as client:
        yield client


def lookup_with(integration: Integration) -> IntegrationLookup:
    """Return an integration lookup that finds ``integration`` as well as the installed ones."""

    def lookup(name: str) -> Integration | None:
        return integration if name == integration.name else get_integration(name)

    return lookup


async def insert_checked_connection(runtime: Runtime) -> str:
    """Store a connection of the in-memory ``checked`` integration with a random password."""
    password = secrets.token_urlsafe(16)
    async with runtime.db.write() as db:
        row = await insert_connection(
            db,
            integration=NAME,
            auth_scheme="password",
            end_user_id="customer-1",
            end_user_name=None,
            end_user_email=None,
            credentials=runtime.credentials.encrypt({"password": password}),
            settings={},
        )
    return row.id
