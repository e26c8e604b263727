"""The connect flow in a real Chromium: basic credentials, Business Central's OAuth sign-in, reconnecting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from interlink.connectors.registry import get_integration
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.sandbox import netsuite
from interlink.store.connections import get_connection
from interlink.store.webhooks import list_endpoints
from tests.connect.conftest import BusinessCentral, Interlink
from tests.connect.pages import field, fill_by_label, tab_to
from tests.connect.vendor import VendorApp
from tests.support.sandbox_server import RunningServer, serve


@dataclass(frozen=True)
class BasicSystem:
    """A sandbox whose integration takes typed credentials, and what a user types for it."""

    integration: str
    server: RunningServer
    values: dict[str, str]
    wrong: dict[str, str]


def _sap_available() -> bool:
    try:
        from interlink.sandbox import sap_s4hana  # noqa: F401
    except ImportError:
        return False
    return get_integration("sap_s4hana") is not None


def _basic_system(name: str) -> Iterator[BasicSystem]:
    if name == "sap_s4hana":
        from interlink.sandbox import sap_s4hana

        with serve(sap_s4hana.create_app(size=5)) as server:
            credentials = sap_s4hana.demo_credentials(server.base_url)
            yield BasicSystem(
                "sap_s4hana",
                server,
                {
                    "System URL": credentials["base_url"],
                    "User": credentials["username"],
                    "Password": credentials["password"],
                    "Client": credentials["sap_client"],
                },
                {"Password": "not-the-password"},
            )
        return
    with serve(netsuite.create_app(size=5)) as server:
        credentials = netsuite.demo_credentials(server.base_url)
        yield BasicSystem(
            "netsuite",
            server,
            {
                "Account ID": credentials["account_id"],
                "Consumer key": credentials["consumer_key"],
                "Consumer secret": credentials["consumer_secret"],
                "Token ID": credentials["token_id"],
                "Token secret": credentials["token_secret"],
                "Base URL": credentials["base_url"],
            },
            {"Token secret": "not-the-token-secret"},
        )


BASIC_SYSTEMS = ["sap_s4hana", "netsuite"] if _sap_available() else ["netsuite"]


@pytest.fixture(params=BASIC_SYSTEMS)
def basic_system(request: pytest.FixtureRequest) -> Iterator[BasicSystem]:
    yield from _basic_system(request.param)


async def start_session(interlink: Interlink, **body: Any) -> str:
    body.setdefault("end_user", {"id": "customer-7", "name": "Acme Tooling"})
    response = await interlink.api.post("/v1/link-sessions", json=body)
    assert response.status_code == 201, response.text
    link_url = response.json()["link_url"]
    assert link_url.startswith(f"{interlink.base_url}/connect/ils_")
    return str(link_url)


def code_from(vendor: VendorApp) -> dict[str, str]:
    assert len(vendor.received) == 1, vendor.received
    return vendor.received[0]


async def exchange(interlink: Interlink, code: str) -> dict[str, Any]:
    response = await interlink.api.post("/v1/link-sessions/exchange", json={"code": code})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_basic_credentials_connect_and_exchange(
    interlink: Interlink, vendor: VendorApp, basic_system: BasicSystem, page: Any
) -> None:
    link_url = await start_session(
        interlink,
        integrations=[basic_system.integration, "dynamics_bc"],
        redirect_url=vendor.redirect_url,
        webhook_url=f"{vendor.base_url}/hooks",
        state="vendor-state-42",
    )
    await page.goto(link_url)
    label = get_integration(basic_system.integration).label  # type: ignore[union-attr]
    await page.get_by_role("link", name=label).click()
    await fill_by_label(page, basic_system.values)
    await page.get_by_role("button", name="Connect").click()
    await page.wait_for_url(f"{vendor.base_url}/connected**")

    received = code_from(vendor)
    assert received["state"] == "vendor-state-42"
    assert received["tab"] == "integrations"
    answer = await exchange(interlink, received["code"])
    assert answer["connection_token"].startswith("ilc_")
    assert answer["webhook_secret"].startswith("whsec_")

    own = await interlink.api.get(
        "/v1/connection", headers={"Authorization": f"Bearer {answer['connection_token']}"}
    )
    assert own.status_code == 200
    assert own.json()["id"] == answer["connection_id"]
    assert own.json()["integration"] == basic_system.integration
    assert own.json()["end_user"]["id"] == "customer-7"
    async with interlink.runtime.db.read() as db:
        endpoints = await list_endpoints(db, after_id=None, limit=10)
    assert [endpoint.connection_id for endpoint in endpoints] == [answer["connection_id"]]

    again = await interlink.api.post("/v1/link-sessions/exchange", json={"code": received["code"]})
    assert again.status_code == 400
    used = await page.goto(link_url)
    assert used is not None
    assert used.status == 410


async def test_wrong_credentials_are_announced(
    interlink: Interlink, vendor: VendorApp, basic_system: BasicSystem, page: Any
) -> None:
    link_url = await start_session(
        interlink, integrations=[basic_system.integration], redirect_url=vendor.redirect_url
    )
    await page.goto(link_url)
    await fill_by_label(page, {**basic_system.values, **basic_system.wrong})
    await page.get_by_role("button", name="Connect").click()

    alert = page.get_by_role("alert")
    await alert.wait_for()
    label = get_integration(basic_system.integration).label  # type: ignore[union-attr]
    assert f"{label} did not accept these credentials" in await alert.inner_text()
    wrong_label = next(iter(basic_system.wrong))
    described_by = await field(page, wrong_label).get_attribute("aria-describedby")
    assert described_by is not None
    assert "form-error" in described_by.split()
    assert await field(page, wrong_label).input_value() == ""
    assert vendor.received == []


async def test_keyboard_only_submission(
    interlink: Interlink, vendor: VendorApp, basic_system: BasicSystem, page: Any
) -> None:
    link_url = await start_session(
        interlink, integrations=[basic_system.integration], redirect_url=vendor.redirect_url
    )
    await page.goto(link_url)
    inputs = await page.locator("form input:not([type=hidden])").evaluate_all("els => els.map(e => e.id)")
    labels_by_id = {
        input_id: await page.locator(f"label[for='{input_id}']").inner_text() for input_id in inputs
    }
    values = {}
    for input_id, label in labels_by_id.items():
        plain = label.removesuffix(" (optional)")
        values[input_id] = basic_system.values.get(plain, "")

    passed = await tab_to(page, inputs[0])
    assert passed[0] == "skip-link", "the skip link comes first"
    for position, input_id in enumerate(inputs):
        if position:
            await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.id")
        assert focused == input_id, f"focus order: expected #{input_id}, got #{focused}"
        await page.keyboard.type(values[input_id])
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Connect"
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{vendor.base_url}/connected**")
    assert "code" in code_from(vendor)


async def test_business_central_sign_in(
    interlink: Interlink, vendor: VendorApp, business_central: BusinessCentral, page: Any
) -> None:
    configured = await interlink.api.put(
        "/v1/integrations/dynamics_bc/oauth-client", json=business_central.oauth_client()
    )
    assert configured.status_code == 200, configured.text
    link_url = await start_session(
        interlink, integrations=["dynamics_bc"], redirect_url=vendor.redirect_url, state="bc-1"
    )
    await page.goto(link_url)
    assert await page.get_by_role("heading", level=1).inner_text() == (
        "Connect Microsoft Dynamics 365 Business Central"
    )
    await fill_by_label(
        page,
        {
            "Tenant ID": business_central.tenant_id,
            "Environment": business_central.environment,
            "API base URL": business_central.base_url,
        },
    )
    await page.get_by_role("button", name="Continue to sign in").click()

    await page.wait_for_url(f"{business_central.base_url}/**/authorize?**")
    authorize = parse_qs(urlsplit(page.url).query)
    assert authorize["code_challenge_method"] == ["S256"]
    assert authorize["redirect_uri"] == [f"{interlink.base_url}/connect/oauth/callback"]
    assert "offline_access" in authorize["scope"][0].split()
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(f"{vendor.base_url}/connected**")

    received = code_from(vendor)
    assert received["state"] == "bc-1"
    answer = await exchange(interlink, received["code"])
    assert "webhook_secret" not in answer or answer["webhook_secret"] is None
    async with interlink.runtime.db.read() as db:
        connection = await get_connection(db, answer["connection_id"])
    assert connection is not None
    assert connection.auth_scheme == "oauth"
    stored = interlink.runtime.credentials.decrypt(connection.credentials)
    assert stored["refresh_token"] in business_central.sandbox.identity.refresh_tokens
    assert stored["tenant_id"] == business_central.tenant_id
    assert "company_id" in stored, "the live check stores the discovered company"
    assert business_central.token_requests("authorization_code") == 1


async def test_cancelled_sign_in_is_announced(
    interlink: Interlink, vendor: VendorApp, business_central: BusinessCentral, page: Any
) -> None:
    await interlink.api.put("/v1/integrations/dynamics_bc/oauth-client", json=business_central.oauth_client())
    link_url = await start_session(interlink, integrations=["dynamics_bc"], redirect_url=vendor.redirect_url)
    await page.goto(link_url)
    await fill_by_label(
        page,
        {
            "Tenant ID": business_central.tenant_id,
            "Environment": business_central.environment,
            "API base URL": business_central.base_url,
        },
    )
    await page.get_by_role("button", name="Continue to sign in").click()
    await page.get_by_role("button", name="Cancel").click()

    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "was cancelled" in await alert.inner_text()
    assert await field(page, "Tenant ID").input_value() == business_central.tenant_id
    assert vendor.received == []


async def test_reconnect_keeps_records_and_resumes(
    interlink: Interlink,
    vendor: VendorApp,
    business_central: BusinessCentral,
    runtime: Runtime,
    page: Any,
) -> None:
    from interlink.connections import create_connection
    from interlink.sandbox.dynamics_bc import demo_credentials
    from interlink.store.records import RecordFilter, list_records
    from tests.sandboxes.dynamics_bc.conftest import sync

    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="dynamics_bc",
        end_user={"id": "customer-9"},
        credentials=demo_credentials(business_central.base_url),
        auth_scheme=None,
        settings=ConnectionSettings(),
    )
    connection_id = created.connection.id
    first = await sync(runtime, connection_id, "vendor")
    assert first.status == "succeeded"
    assert first.counts["created"] > 0

    configured = await interlink.api.put(
        "/v1/integrations/dynamics_bc/oauth-client", json=business_central.oauth_client()
    )
    assert configured.status_code == 200
    business_central.sandbox.credentials.client_secret = "rotated-by-the-customer"
    business_central.sandbox.tokens.clear()
    failed = await sync(runtime, connection_id, "vendor")
    assert failed.status == "failed"
    async with runtime.db.read() as db:
        before = await get_connection(db, connection_id)
    assert before is not None
    assert before.status == "reauthorization_required"

    link_url = await start_session(
        interlink,
        end_user={"id": "customer-9"},
        connection_id=connection_id,
        redirect_url=vendor.redirect_url,
    )
    await page.goto(link_url)
    assert (await page.get_by_role("heading", level=1).inner_text()).startswith("Reconnect")
    await page.get_by_role("link", name="Microsoft Entra app registration (client credentials)").click()
    credentials = demo_credentials(business_central.base_url)
    await fill_by_label(
        page,
        {
            "Tenant ID": credentials["tenant_id"],
            "Environment": credentials["environment"],
            "Client ID": credentials["client_id"],
            "Client secret": "rotated-by-the-customer",
            "API base URL": credentials["api_base_url"],
            "Token URL": credentials["token_url"],
        },
    )
    await page.get_by_role("button", name="Connect").click()
    await page.wait_for_url(f"{vendor.base_url}/connected**")

    answer = await exchange(interlink, code_from(vendor)["code"])
    assert answer["connection_id"] == connection_id
    old = await interlink.api.get("/v1/connection", headers={"Authorization": f"Bearer {created.token}"})
    assert old.status_code == 401
    new = await interlink.api.get(
        "/v1/connection", headers={"Authorization": f"Bearer {answer['connection_token']}"}
    )
    assert new.status_code == 200
    assert new.json()["status"] == "active"

    resumed = await interlink.api.get(f"/v1/connections/{connection_id}/syncs")
    queued = [run for run in resumed.json()["data"] if run["status"] == "queued"]
    assert {run["entity"] for run in queued} == {"purchase_order", "vendor", "part", "location"}
    assert {run["mode"] for run in queued} == {"incremental"}
    vendor_run = next(run for run in queued if run["entity"] == "vendor")
    finished = await runtime.engine.execute_run(vendor_run["id"])
    assert finished is not None
    assert finished.status == "succeeded"
    assert finished.counts["created"] == 0, "records were kept, and the read resumed from the cursor"
    async with runtime.db.read() as db:
        kept = await list_records(
            db, RecordFilter(entity="vendor", connection_id=connection_id), after=None, limit=1000
        )
    assert len(kept) == first.counts["created"]
