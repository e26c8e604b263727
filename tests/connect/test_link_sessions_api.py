"""Link sessions and OAuth clients through the HTTP API, and the connect pages without a browser."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from interlink.crypto import generate_token, hash_token
from interlink.sandbox import netsuite
from interlink.store.connections import insert_connection, issue_connection_token
from interlink.store.tables import link_sessions, oauth_clients
from tests.connect.conftest import Interlink
from tests.connect.vendor import VendorApp
from tests.support.sandbox_server import RunningServer, serve


@pytest.fixture
def netsuite_server() -> Iterator[RunningServer]:
    with serve(netsuite.create_app(size=3)) as server:
        yield server


def netsuite_form(server: RunningServer) -> dict[str, str]:
    credentials = netsuite.demo_credentials(server.base_url)
    form = {f"credentials.{name}": value for name, value in credentials.items()}
    return {"auth_scheme": "token_based_authentication", **form}


async def start(interlink: Interlink, **body: Any) -> httpx.Response:
    body.setdefault("end_user", {"id": "customer-1"})
    return await interlink.api.post("/v1/link-sessions", json=body)


async def link_path(interlink: Interlink, **body: Any) -> str:
    response = await start(interlink, **body)
    assert response.status_code == 201, response.text
    return urlsplit(response.json()["link_url"]).path


async def complete_netsuite(interlink: Interlink, path: str, server: RunningServer) -> httpx.Response:
    return await interlink.api.post(f"{path}/netsuite", data=netsuite_form(server), follow_redirects=False)


async def test_session_expires_after_thirty_minutes(interlink: Interlink) -> None:
    before = datetime.now(UTC)
    response = await start(interlink)
    assert response.status_code == 201
    expires_at = datetime.fromisoformat(response.json()["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=29) < expires_at <= datetime.now(UTC) + timedelta(minutes=30)


async def test_only_the_token_hash_is_stored(interlink: Interlink) -> None:
    response = await start(interlink)
    token = urlsplit(response.json()["link_url"]).path.rsplit("/", 1)[1]
    async with interlink.runtime.db.read() as db:
        stored = (await db.execute(select(link_sessions.c.token_hash))).scalars().all()
    assert stored == [hash_token(token)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"integrations": ["no_such_system"]}, "integrations"),
        ({"redirect_url": "javascript:alert(1)"}, "redirect_url"),
        ({"redirect_url": "/relative/path"}, "redirect_url"),
        ({"webhook_url": "ftp://127.0.0.1/hooks"}, "webhook_url"),
        ({"connection_id": "con_missing"}, "connection_id"),
    ],
)
async def test_invalid_session_request_names_field(
    interlink: Interlink, body: dict[str, Any], field: str
) -> None:
    response = await start(interlink, **body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


async def test_reconnect_must_name_the_same_end_user(interlink: Interlink) -> None:
    async with interlink.runtime.db.write() as db:
        row = await insert_connection(
            db,
            integration="netsuite",
            auth_scheme="token_based_authentication",
            end_user_id="customer-1",
            end_user_name=None,
            end_user_email=None,
            credentials=interlink.runtime.credentials.encrypt({}),
            settings={},
        )
    other = await start(interlink, end_user={"id": "customer-2"}, connection_id=row.id)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "end_user.id"
    wrong_integration = await start(interlink, connection_id=row.id, integrations=["dynamics_bc"])
    assert wrong_integration.status_code == 422
    assert wrong_integration.json()["errors"][0]["field"] == "integrations"
    same = await start(interlink, connection_id=row.id)
    assert same.status_code == 201


async def test_connection_token_cannot_start_sessions(interlink: Interlink) -> None:
    token = generate_token("ilc")
    async with interlink.runtime.db.write() as db:
        row = await insert_connection(
            db,
            integration="netsuite",
            auth_scheme="token_based_authentication",
            end_user_id="customer-1",
            end_user_name=None,
            end_user_email=None,
            credentials=interlink.runtime.credentials.encrypt({}),
            settings={},
        )
        await issue_connection_token(db, row.id, hash_token(token))
    headers = {"Authorization": f"Bearer {token}"}
    create = await interlink.api.post(
        "/v1/link-sessions", json={"end_user": {"id": "customer-1"}}, headers=headers
    )
    assert create.status_code == 403
    exchange = await interlink.api.post("/v1/link-sessions/exchange", json={"code": "x"}, headers=headers)
    assert exchange.status_code == 403


async def test_unknown_and_expired_links_explain_themselves(interlink: Interlink) -> None:
    unknown = await interlink.api.get("/connect/ils_not-a-real-token")
    assert unknown.status_code == 404
    assert "This link is not valid" in unknown.text

    path = await link_path(interlink)
    async with interlink.runtime.db.write() as db:
        await db.execute(update(link_sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    expired = await interlink.api.get(path)
    assert expired.status_code == 410
    assert "This link has expired" in expired.text


async def test_pages_forbid_framing_and_referrers(interlink: Interlink) -> None:
    path = await link_path(interlink)
    page = await interlink.api.get(path)
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    nonce = page.headers["content-security-policy"].split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<style nonce="{nonce}">' in page.text
    assert "<script" not in page.text


async def test_form_lists_fields_with_labels(interlink: Interlink) -> None:
    path = await link_path(interlink, integrations=["netsuite"])
    page = await interlink.api.get(f"{path}/netsuite")
    assert page.status_code == 200
    for name in ("account_id", "consumer_key", "consumer_secret", "token_id", "token_secret", "base_url"):
        assert f'<label for="field-{name}">' in page.text
        assert f'aria-describedby="help-{name}"' in page.text
    assert 'name="credentials.token_secret" type="password"' in page.text
    assert 'name="credentials.account_id" type="text"' in page.text


async def test_missing_field_is_marked_and_announced(interlink: Interlink) -> None:
    path = await link_path(interlink, integrations=["netsuite"])
    form = {"auth_scheme": "token_based_authentication", "credentials.account_id": "1234567"}
    page = await interlink.api.post(f"{path}/netsuite", data=form)
    assert page.status_code == 422
    assert 'role="alert"' in page.text
    assert "Enter the Consumer key." in page.text
    assert 'aria-invalid="true" aria-describedby="help-consumer_key error-consumer_key"' in page.text
    assert 'value="1234567"' in page.text


async def test_completion_redirects_with_code_and_state(
    interlink: Interlink, netsuite_server: RunningServer, vendor: VendorApp
) -> None:
    path = await link_path(
        interlink, integrations=["netsuite"], redirect_url=vendor.redirect_url, state="s p&ce"
    )
    answer = await complete_netsuite(interlink, path, netsuite_server)
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{vendor.base_url}/connected"
    assert query["state"] == ["s p&ce"]
    assert query["tab"] == ["integrations"]
    assert query["code"][0].startswith("ilx_")

    exchanged = await interlink.api.post("/v1/link-sessions/exchange", json={"code": query["code"][0]})
    assert exchanged.status_code == 200
    assert exchanged.json()["webhook_secret"] is None
    again = await interlink.api.post("/v1/link-sessions/exchange", json={"code": query["code"][0]})
    assert again.status_code == 400
    assert again.json()["type"].endswith("/invalid-code")


async def test_completion_without_redirect_shows_done_page(
    interlink: Interlink, netsuite_server: RunningServer
) -> None:
    path = await link_path(interlink, integrations=["netsuite"])
    page = await complete_netsuite(interlink, path, netsuite_server)
    assert page.status_code == 200
    assert "Oracle NetSuite is connected" in page.text
    used = await complete_netsuite(interlink, path, netsuite_server)
    assert used.status_code == 410


async def test_expired_code_cannot_be_exchanged(
    interlink: Interlink, netsuite_server: RunningServer, vendor: VendorApp
) -> None:
    path = await link_path(interlink, integrations=["netsuite"], redirect_url=vendor.redirect_url)
    answer = await complete_netsuite(interlink, path, netsuite_server)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    async with interlink.runtime.db.write() as db:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await db.execute(update(link_sessions).values(code_expires_at=past))
    expired = await interlink.api.post("/v1/link-sessions/exchange", json={"code": code})
    assert expired.status_code == 400


async def test_oauth_client_is_stored_encrypted(interlink: Interlink) -> None:
    before = await interlink.api.get("/v1/integrations/dynamics_bc/oauth-client")
    assert before.status_code == 200
    assert before.json()["configured"] is False

    body = {"client_id": "app-1", "client_secret": "very-secret-value"}
    saved = await interlink.api.put("/v1/integrations/dynamics_bc/oauth-client", json=body)
    assert saved.status_code == 200
    assert saved.json()["configured"] is True
    assert "very-secret-value" not in saved.text
    after = await interlink.api.get("/v1/integrations/dynamics_bc/oauth-client")
    assert after.json()["configured"] is True
    assert "client_secret" not in after.json()
    async with interlink.runtime.db.read() as db:
        sealed = (await db.execute(select(oauth_clients.c.sealed))).scalar_one()
    assert b"very-secret-value" not in sealed
    assert b"app-1" not in sealed


async def test_oauth_client_needs_an_oauth_integration(interlink: Interlink) -> None:
    body = {"client_id": "app-1", "client_secret": "secret"}
    basic = await interlink.api.put("/v1/integrations/netsuite/oauth-client", json=body)
    assert basic.status_code == 422
    unknown = await interlink.api.put("/v1/integrations/nothing/oauth-client", json=body)
    assert unknown.status_code == 404
    bad_url = await interlink.api.put(
        "/v1/integrations/dynamics_bc/oauth-client", json={**body, "token_url": "file:///etc/passwd"}
    )
    assert bad_url.status_code == 422


async def test_oauth_scheme_hidden_without_client(interlink: Interlink) -> None:
    path = await link_path(interlink, integrations=["dynamics_bc"])
    page = await interlink.api.get(f"{path}/dynamics_bc")
    assert page.status_code == 200
    assert "Sign in with Microsoft" not in page.text
    assert 'name="auth_scheme" value="client_credentials"' in page.text
