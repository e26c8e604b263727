"""Fixtures for the connect flow tests: Interlink served by uvicorn, the sandboxes, a vendor app, Chromium.

Interlink runs in a server thread with its own event loop, as in production.
The tests read the store through the ``runtime`` fixture, which opens the
same database from the test's loop. Every server listens on 127.0.0.1 on a
port the operating system picks. Chromium is Debian's ``/usr/bin/chromium``
driven by Playwright: when it (or Playwright) is missing the browser tests
skip, unless ``INTERLINK_REQUIRE_ALL`` is set, when they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.connectors import dynamics_bc
from interlink.crypto import generate_token, hash_token
from interlink.runtime import Runtime
from interlink.sandbox.dynamics_bc import SandboxCredentials, create_app
from interlink.settings import Settings
from interlink.store.api_keys import insert_api_key
from tests.connect.tuning import FAST_TUNING
from tests.connect.vendor import VendorApp, vendor_app
from tests.support.sandbox_server import RunningServer, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Interlink:
    """A served Interlink: its address, an operator API client and the runtime behind the server."""

    server: RunningServer
    api: httpx.AsyncClient
    runtime: Runtime

    @property
    def base_url(self) -> str:
        return self.server.base_url


@dataclass
class BusinessCentral:
    """A served Business Central sandbox, whose identity provider plays Microsoft's."""

    server: RunningServer
    app: Any

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def sandbox(self) -> Any:
        return self.app.state.sandbox

    @property
    def tenant_id(self) -> str:
        return str(self.sandbox.credentials.tenant_id)

    @property
    def environment(self) -> str:
        return str(self.sandbox.credentials.environment)

    def oauth_client(self) -> dict[str, str]:
        """The body of ``PUT /v1/integrations/dynamics_bc/oauth-client`` for this sandbox."""
        credentials = self.sandbox.credentials
        return {
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "authorize_url": f"{self.base_url}/{{tenant_id}}/oauth2/v2.0/authorize",
            "token_url": f"{self.base_url}/{{tenant_id}}/oauth2/v2.0/token",
        }

    def arm(self, **fault: Any) -> None:
        httpx.post(f"{self.base_url}/_sandbox/faults", json=fault).raise_for_status()

    def token_requests(self, grant_type: str) -> int:
        response = httpx.get(f"{self.base_url}/_sandbox/oauth/stats")
        response.raise_for_status()
        return int(response.json()["token_requests"].get(grant_type, 0))


@pytest.fixture
def bc_tuning() -> Iterator[None]:
    dynamics_bc.use_tuning(FAST_TUNING)
    yield
    dynamics_bc.use_tuning(None)


@pytest.fixture
def business_central(bc_tuning: None) -> Iterator[BusinessCentral]:
    app = create_app(size=12, seed=3, page_size=50, credentials=SandboxCredentials())
    with serve(app) as server:
        yield BusinessCentral(server, app)


@pytest.fixture
def vendor() -> Iterator[VendorApp]:
    app = vendor_app()
    with serve(app.asgi) as server:
        app.base_url = server.base_url
        yield app


@pytest.fixture
async def interlink(runtime: Runtime, settings: Settings) -> AsyncIterator[Interlink]:
    """Interlink served on 127.0.0.1, sharing the store of ``runtime``; webhooks may target 127.0.0.1."""
    served_settings = settings.model_copy(update={"webhook_allow_private": True, "webhook_allow_http": True})
    served = Runtime(served_settings, workers=False)
    key = generate_token("ilk")
    async with runtime.db.write() as db:
        await insert_api_key(db, name="tests", key_hash=hash_token(key), key_prefix=key[:8], expires_at=None)
    with serve(served.app()) as server:
        # The link URLs and the OAuth redirect URI are built from the public base URL.
        served.settings.base_url = server.base_url
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30.0) as api:
            yield Interlink(server, api, runtime)


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing; install Debian's chromium package (scripts/test does)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing; install the dev extra"
    return None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("INTERLINK_REQUIRE_ALL"):
            pytest.fail(f"browser tests cannot run: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context()
    context.set_default_timeout(20_000)
    page = await context.new_page()
    yield page
    await context.close()
