"""Fixtures for the Maximo tests: a sandbox on a real port, fast connector options, a connection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from interlink.connections import create_connection
from interlink.connectors.http import RetryPolicy
from interlink.connectors.maximo import MaximoOptions, build_integration
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.sandbox.maximo import create_app, demo_credentials
from tests.sandboxes.conftest import MovableClock, use_integration
from tests.support.sandbox_server import RunningServer, serve

FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total_wait=5.0)


@dataclass
class MaximoSandbox:
    """A running Maximo sandbox, an admin client for it, and the clock it stamps changes with."""

    server: RunningServer
    admin: httpx.Client
    clock: MovableClock

    @property
    def credentials(self) -> dict[str, str]:
        return demo_credentials(self.server.base_url)

    def api(self) -> httpx.Client:
        """Return a client that calls the REST API with the demo API key."""
        return httpx.Client(
            base_url=self.server.base_url + "/maximo/oslc",
            headers={"apikey": self.credentials["api_key"], "Accept": "application/json"},
        )

    def rows(self, structure: str) -> list[dict[str, Any]]:
        response = self.admin.get(f"/_sandbox/records/{structure}")
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()["records"]
        return rows

    def work_orders(self) -> list[dict[str, Any]]:
        return [row for row in self.rows("mxapiwo") if not row["istask"]]

    def change(self, structure: str, key: dict[str, str], **values: Any) -> None:
        """Change a row one minute after the last change, as a user of the system would."""
        self.clock.advance(timedelta(minutes=1))
        response = self.admin.patch(f"/_sandbox/records/{structure}", json={"key": key, "values": values})
        response.raise_for_status()

    def delete(self, structure: str, key: dict[str, str]) -> None:
        self.clock.advance(timedelta(minutes=1))
        self.admin.request("DELETE", f"/_sandbox/records/{structure}", json={"key": key}).raise_for_status()

    def arm(self, **fault: Any) -> None:
        self.admin.post("/_sandbox/faults", json=fault).raise_for_status()


@pytest.fixture
def maximo_clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def maximo_sandbox(maximo_clock: MovableClock) -> Iterator[MaximoSandbox]:
    app = create_app(size=24, seed=5, clock=maximo_clock, max_page_size=50)
    with serve(app) as server, httpx.Client(base_url=server.base_url) as admin:
        yield MaximoSandbox(server, admin, maximo_clock)


@pytest.fixture
def maximo_options() -> MaximoOptions:
    return MaximoOptions(retry_policy=FAST_RETRIES, page_size=7, parent_batch=2)


async def connect(
    runtime: Runtime,
    credentials: dict[str, str],
    options: MaximoOptions,
    settings: ConnectionSettings | None = None,
) -> str:
    use_integration(runtime, build_integration(options))
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="maximo",
        end_user={"id": "customer-1"},
        credentials=credentials,
        auth_scheme=None,
        settings=settings or ConnectionSettings(),
    )
    return created.connection.id


@pytest.fixture
async def maximo_connection(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_options: MaximoOptions
) -> str:
    return await connect(runtime, maximo_sandbox.credentials, maximo_options)
