"""Pytest plugin: a real Tryton 8.2 server for the whole test session, with a fresh database per test.

The seeded template takes about 40 s to build. It is kept in
``INTERLINK_TRYTON_TEMPLATE_DIR`` (default ``~/.cache/interlink/tryton-template``)
and rebuilt only when the seed script or trytond changes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from interlink.connections import create_connection
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from tests.support.tryton_admin import TrytonAdmin, TrytonRpcError

try:
    import trytond  # noqa: F401

    from interlink.demo.tryton_server import TrytonServer, prepare_template
except ImportError:  # Tryton is an optional extra
    TrytonServer = None  # type: ignore[assignment,misc]

ADMIN_PASSWORD = "tryton-admin-password"
PURCHASES = 30
# Spare copies beyond one per collected test that takes a database: for tests that take
# two, and for tests that reach the server through another fixture (the contract test).
SPARE_COPIES = 8


@pytest.fixture(scope="session")
def tryton_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrytonServer]:
    if TrytonServer is None:
        message = "Tryton is not installed: pip install -e '.[tryton]'"
        if os.environ.get("INTERLINK_REQUIRE_ALL"):
            pytest.fail(message)
        pytest.skip(message)
    configured = os.environ.get("INTERLINK_TRYTON_TEMPLATE_DIR")
    directory = Path(configured) if configured else Path.home() / ".cache" / "interlink" / "tryton-template"
    template = prepare_template(directory, purchases=PURCHASES, admin_password=ADMIN_PASSWORD)
    server = TrytonServer.with_copies(
        template,
        tmp_path_factory.mktemp("tryton"),
        admin_password=ADMIN_PASSWORD,
        copies=_copies_needed(request.session),
        # trytond loads every database at start, about 0.6 s each on an idle 2-core machine.
        startup_timeout=300.0,
    )
    with server:
        yield server


def _copies_needed(session: pytest.Session) -> int:
    """Count the collected tests that take a database copy; trytond must know every name at start."""
    users = [
        item for item in session.items if {"tryton", "tryton_server"} & set(getattr(item, "fixturenames", ()))
    ]
    return len(users) + SPARE_COPIES


@dataclass
class TrytonDatabase:
    """One fresh seeded database on the shared server."""

    server: TrytonServer
    name: str

    @property
    def url(self) -> str:
        return self.server.url

    def password_credentials(self) -> dict[str, str]:
        return {
            "url": self.server.url,
            "database": self.name,
            "username": self.server.admin_login,
            "password": self.server.admin_password,
        }

    def api_key_credentials(self) -> dict[str, str]:
        return {"url": self.server.url, "database": self.name, "api_key": self.server.rest_application_key}

    def admin(self) -> TrytonAdmin:
        admin = TrytonAdmin(self.server.url, self.name, self.server.admin_login, self.server.admin_password)
        admin.login()
        return admin


def acquire(server: TrytonServer) -> TrytonDatabase:
    """Take a fresh database copy and log in once, so trytond has loaded it before the test starts."""
    database = TrytonDatabase(server, server.acquire_database())
    for attempt in range(1, 6):
        try:
            database.admin().close()
            return database
        except TrytonRpcError:
            # trytond loads a database's models on its first login; under load that first
            # login can fail, and a later one succeeds.
            if attempt == 5:
                raise
            time.sleep(1.0)
    return database


@pytest.fixture
def tryton(tryton_server: TrytonServer) -> TrytonDatabase:
    return acquire(tryton_server)


async def connect(runtime: Runtime, credentials: dict[str, str], *, end_user: str = "customer-1") -> str:
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="tryton",
        end_user={"id": end_user},
        credentials=credentials,
        auth_scheme=None,
        settings=ConnectionSettings(),
    )
    return created.connection.id
