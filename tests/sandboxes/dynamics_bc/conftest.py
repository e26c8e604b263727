"""Fixtures for the Business Central tests: a sandbox on a real port and a connection to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from interlink.connections import create_connection
from interlink.connectors.dynamics_bc import use_tuning
from interlink.connectors.dynamics_bc.client import Tuning
from interlink.connectors.http import RetryPolicy
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.sandbox.dynamics_bc import create_app, demo_credentials
from interlink.store.connections import get_connection
from interlink.store.records import RecordFilter, StoredRecord, list_records
from interlink.store.runs import RunRow
from interlink.sync.requests import request_syncs
from tests.support.sandbox_server import RunningServer, serve

FAST_TUNING = Tuning(
    retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total_wait=5.0),
    page_size=7,
    request_timeout=1.0,
)


@dataclass
class BusinessCentral:
    """A running sandbox and an admin client for it."""

    server: RunningServer
    admin: httpx.Client

    @property
    def credentials(self) -> dict[str, str]:
        return demo_credentials(self.server.base_url)

    def change(self, entity_set: str, record_id: str, **fields: Any) -> dict[str, Any]:
        response = self.admin.patch(f"/_sandbox/records/{entity_set}/{record_id}", json=fields)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def add(self, entity_set: str, **fields: Any) -> dict[str, Any]:
        response = self.admin.post(f"/_sandbox/records/{entity_set}", json=fields)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def delete(self, entity_set: str, record_id: str) -> None:
        self.admin.delete(f"/_sandbox/records/{entity_set}/{record_id}").raise_for_status()

    def arm(self, **fault: Any) -> None:
        self.admin.post("/_sandbox/faults", json=fault).raise_for_status()

    def api(self, path: str, **params: str) -> Any:
        """GET an API path below the company, authenticated like a client."""
        credentials = self.credentials
        token = self.admin.post(
            credentials["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"],
                "scope": "https://api.businesscentral.dynamics.com/.default",
            },
        ).json()["access_token"]
        root = f"/v2.0/{credentials['tenant_id']}/{credentials['environment']}/api/v2.0"
        headers = {"Authorization": f"Bearer {token}"}
        company = self.admin.get(f"{root}/companies", headers=headers).json()["value"][0]["id"]
        response = self.admin.get(f"{root}/companies({company})/{path}", params=params, headers=headers)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def bc_sandbox() -> Iterator[BusinessCentral]:
    use_tuning(FAST_TUNING)
    with (
        serve(create_app(size=30, seed=7, page_size=50)) as server,
        httpx.Client(base_url=server.base_url) as admin,
    ):
        yield BusinessCentral(server, admin)
    use_tuning(None)


@pytest.fixture
async def bc_connection(runtime: Runtime, bc_sandbox: BusinessCentral) -> str:
    return await connect(runtime, bc_sandbox, "customer-1")


async def connect(
    runtime: Runtime,
    sandbox: BusinessCentral,
    end_user_id: str,
    settings: ConnectionSettings | None = None,
) -> str:
    """Link the sandbox through the headless connect path and return the new connection's id."""
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="dynamics_bc",
        end_user={"id": end_user_id},
        credentials=sandbox.credentials,
        auth_scheme=None,
        settings=settings or ConnectionSettings(),
    )
    return created.connection.id


async def sync(runtime: Runtime, connection_id: str, entity: str, mode: str = "incremental") -> RunRow:
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=[entity],
        mode=mode,
        trigger="manual",
        now=datetime.now(UTC),
    )
    finished = await runtime.engine.execute_run(run.id)
    assert finished is not None
    return finished


async def stored(runtime: Runtime, connection_id: str, entity: str) -> dict[str, StoredRecord]:
    async with runtime.db.read() as db:
        rows = await list_records(
            db,
            RecordFilter(entity=entity, connection_id=connection_id, include_deleted=True),
            after=None,
            limit=10_000,
        )
    return {row.remote_id: row for row in rows}


async def connection_status(runtime: Runtime, connection_id: str) -> str:
    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
    assert connection is not None
    return connection.status
