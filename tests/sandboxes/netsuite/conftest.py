"""Fixtures for the NetSuite tests: a sandbox on a real port and a connection to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from interlink.connections import create_connection
from interlink.connectors.http import RetryPolicy
from interlink.connectors.netsuite import use_tuning
from interlink.connectors.netsuite.client import Tuning
from interlink.connectors.netsuite.oauth1 import TokenCredentials, authorization_header
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.sandbox.netsuite import create_app, demo_credentials
from tests.support.sandbox_server import RunningServer, serve

FAST_TUNING = Tuning(
    retry=RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05, max_total_wait=5.0),
    concurrency=4,
    page_size=8,
    list_limit=10,
    request_timeout=1.0,
)


@dataclass
class NetSuite:
    """A running sandbox and an admin client for it."""

    server: RunningServer
    admin: httpx.Client

    @property
    def credentials(self) -> dict[str, str]:
        return demo_credentials(self.server.base_url)

    def change(self, record_type: str, record_id: str, **fields: Any) -> None:
        self.admin.patch(f"/_sandbox/records/{record_type}/{record_id}", json=fields).raise_for_status()

    def delete(self, record_type: str, record_id: str) -> None:
        self.admin.delete(f"/_sandbox/records/{record_type}/{record_id}").raise_for_status()

    def arm(self, **fault: Any) -> None:
        self.admin.post("/_sandbox/faults", json=fault).raise_for_status()

    def signed_get(self, path: str, **params: str) -> httpx.Response:
        """GET an API path signed with the sandbox's default token, as a client does."""
        values = self.credentials
        token = TokenCredentials(
            values["account_id"],
            values["consumer_key"],
            values["consumer_secret"],
            values["token_id"],
            values["token_secret"],
        )
        request = self.admin.build_request("GET", path, params=params)
        request.headers["Authorization"] = authorization_header(token, "GET", str(request.url))
        return self.admin.send(request)

    def ids(self, record_type: str) -> list[str]:
        response = self.signed_get(f"/services/rest/record/v1/{record_type}", limit="1000")
        response.raise_for_status()
        return [item["id"] for item in response.json()["items"]]


@contextmanager
def open_sandbox(**options: Any) -> Iterator[NetSuite]:
    """Serve a sandbox with 30 purchase orders, and use the fast tuning while it runs."""
    use_tuning(FAST_TUNING)
    try:
        with (
            serve(create_app(size=30, seed=3, **options)) as server,
            httpx.Client(base_url=server.base_url) as admin,
        ):
            yield NetSuite(server, admin)
    finally:
        use_tuning(None)


@pytest.fixture
def ns_sandbox() -> Iterator[NetSuite]:
    with open_sandbox() as sandbox:
        yield sandbox


async def connect(runtime: Runtime, sandbox: NetSuite) -> str:
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="netsuite",
        end_user={"id": "customer-1"},
        credentials=sandbox.credentials,
        auth_scheme=None,
        settings=ConnectionSettings(),
    )
    return created.connection.id


@pytest.fixture
async def ns_connection(runtime: Runtime, ns_sandbox: NetSuite) -> str:
    return await connect(runtime, ns_sandbox)
