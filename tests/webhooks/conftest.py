"""Fixtures for the webhook tests: a test CA, an HTTPS receiver, a fake clock, an API client.

No test resolves a name through DNS: endpoint URLs use 127.0.0.1 or a
``.test`` name that ``local_resolver`` maps to 127.0.0.1, and every server
is one a test started on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from interlink.api.app import create_app
from interlink.api.routes.webhooks import get_url_guard
from interlink.crypto import generate_token, hash_token
from interlink.runtime import Runtime
from interlink.store.api_keys import insert_api_key
from interlink.store.connections import issue_connection_token
from interlink.webhooks.delivery import WebhookDeliverer
from interlink.webhooks.urls import UrlGuard
from tests.support.memory_source import insert_memory_connection
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import RECEIVER_NAME, FakeClock, LocalResolver, SigningClock


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def receiver(ca: trustme.CA, tmp_path: Path) -> Iterator[Receiver]:
    """A running receiver whose certificate names 127.0.0.1 and receiver.test."""
    server = Receiver(ca.issue_cert("127.0.0.1", RECEIVER_NAME), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def resolver() -> LocalResolver:
    return LocalResolver()


@pytest.fixture
def guard(resolver: LocalResolver) -> UrlGuard:
    """The policy of an operator who allowed private addresses, which the loopback receiver needs."""
    return UrlGuard(allow_private=True, resolver=resolver)


@pytest.fixture
async def deliverer(
    runtime: Runtime, guard: UrlGuard, ca_bundle: str, clock: FakeClock
) -> AsyncIterator[WebhookDeliverer]:
    sender = WebhookDeliverer(
        runtime.db,
        runtime.credentials,
        guard=guard,
        ca_bundle=ca_bundle,
        clock=clock,
        wall_clock=SigningClock(),
        owner="worker-a",
    )
    yield sender
    await sender.aclose()


@pytest.fixture
async def connection_id(runtime: Runtime) -> str:
    return await insert_memory_connection(runtime)


@dataclass(frozen=True)
class Api:
    """An API client with an operator key, and a way to get one for a connection token."""

    client: httpx.AsyncClient
    operator: dict[str, str]

    async def connection_headers(self, runtime: Runtime, connection_id: str) -> dict[str, str]:
        token = generate_token("ilc")
        async with runtime.db.write() as db:
            await issue_connection_token(db, connection_id, hash_token(token))
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(runtime: Runtime, guard: UrlGuard, clock: FakeClock) -> AsyncIterator[Api]:
    runtime.clock = clock
    app = create_app(runtime.services())
    app.dependency_overrides[get_url_guard] = lambda: guard
    token = generate_token("ilk")
    async with runtime.db.write() as db:
        await insert_api_key(
            db, name="tests", key_hash=hash_token(token), key_prefix=token[:8], expires_at=None
        )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as client:
        yield Api(client, {"Authorization": f"Bearer {token}"})
