"""Fixtures for the SAP tests: a sandbox on a real port, fast connector options, a connection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from interlink.connections import create_connection
from interlink.connectors.http import RetryPolicy
from interlink.connectors.sap_s4hana import SapOptions, build_integration
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.sandbox.sap_s4hana import create_app, demo_credentials
from tests.sandboxes.conftest import MovableClock, use_integration
from tests.support.sandbox_server import RunningServer, serve

ODATA = "/sap/opu/odata/sap"
FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total_wait=5.0)
SWEEP_INTERVAL = timedelta(hours=6)


@dataclass
class SapSandbox:
    """A running SAP sandbox, an admin client for it, and the clock it stamps changes with."""

    server: RunningServer
    admin: httpx.Client
    clock: MovableClock

    @property
    def credentials(self) -> dict[str, str]:
        return demo_credentials(self.server.base_url)

    def api(self) -> httpx.Client:
        """Return a client that calls the OData services as the demo user."""
        values = self.credentials
        return httpx.Client(
            base_url=self.server.base_url + ODATA,
            auth=(values["username"], values["password"]),
            headers={"Accept": "application/json"},
        )

    def records(self, entity_set: str) -> list[dict[str, Any]]:
        response = self.admin.get(f"/_sandbox/records/{entity_set}")
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    def change(self, entity_set: str, key: dict[str, str], **values: Any) -> None:
        """Change a record one minute after the last change, as a user of the system would."""
        self.clock.advance(timedelta(minutes=1))
        response = self.admin.patch(f"/_sandbox/records/{entity_set}", json={"key": key, "values": values})
        response.raise_for_status()

    def delete(self, entity_set: str, key: dict[str, str]) -> None:
        self.clock.advance(timedelta(minutes=1))
        self.admin.request("DELETE", f"/_sandbox/records/{entity_set}", json={"key": key}).raise_for_status()

    def arm(self, **fault: Any) -> None:
        self.admin.post("/_sandbox/faults", json=fault).raise_for_status()


@pytest.fixture
def sap_clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def sap_sandbox(sap_clock: MovableClock) -> Iterator[SapSandbox]:
    app = create_app(size=24, seed=7, clock=sap_clock, max_page_size=5)
    with serve(app) as server, httpx.Client(base_url=server.base_url) as admin:
        yield SapSandbox(server, admin, sap_clock)


@pytest.fixture
def sap_options(sap_clock: MovableClock) -> SapOptions:
    return SapOptions(
        retry_policy=FAST_RETRIES,
        clock=sap_clock,
        page_size=8,
        item_sweep_interval=SWEEP_INTERVAL,
    )


async def connect(
    runtime: Runtime,
    credentials: dict[str, str],
    options: SapOptions,
    settings: ConnectionSettings | None = None,
) -> str:
    use_integration(runtime, build_integration(options))
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="sap_s4hana",
        end_user={"id": "customer-1"},
        credentials=credentials,
        auth_scheme=None,
        settings=settings or ConnectionSettings(),
    )
    return created.connection.id


@pytest.fixture
async def sap_connection(runtime: Runtime, sap_sandbox: SapSandbox, sap_options: SapOptions) -> str:
    return await connect(runtime, sap_sandbox.credentials, sap_options)
