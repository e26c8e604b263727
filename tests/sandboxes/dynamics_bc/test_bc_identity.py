"""The sandbox's identity provider: consent, PKCE, one-time codes and rotating refresh tokens."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from interlink.connectors.dynamics_bc.client import OAUTH_SCOPE
from interlink.sandbox.dynamics_bc import SandboxCredentials
from tests.sandboxes.dynamics_bc.conftest import BusinessCentral
from tests.sandboxes.dynamics_bc.sign_in import authorize_url, redeem, refresh, sign_in


def test_code_redeems_once_for_tokens(bc_sandbox: BusinessCentral) -> None:
    signed_in = sign_in(bc_sandbox.server.base_url)
    first = redeem(bc_sandbox.server.base_url, signed_in)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    assert tokens["expires_in"] > 0

    again = redeem(bc_sandbox.server.base_url, signed_in)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["error_codes"] == [54005]


def test_access_token_reads_the_api(bc_sandbox: BusinessCentral) -> None:
    tokens = redeem(bc_sandbox.server.base_url, sign_in(bc_sandbox.server.base_url)).json()
    credentials = SandboxCredentials()
    companies = bc_sandbox.admin.get(
        f"/v2.0/{credentials.tenant_id}/{credentials.environment}/api/v2.0/companies",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert companies.status_code == 200
    assert len(companies.json()["value"]) == 1


def test_wrong_code_verifier_is_rejected(bc_sandbox: BusinessCentral) -> None:
    signed_in = sign_in(bc_sandbox.server.base_url)
    answer = redeem(bc_sandbox.server.base_url, signed_in, verifier="x" * 43)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert answer.json()["error_codes"] == [501481]


def test_refresh_token_works_once(bc_sandbox: BusinessCentral) -> None:
    base = bc_sandbox.server.base_url
    first = redeem(base, sign_in(base)).json()
    rotated = refresh(base, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != first["refresh_token"]
    assert rotated.json()["access_token"] != first["access_token"]

    reused = refresh(base, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert refresh(base, rotated.json()["refresh_token"]).status_code == 200


def test_revoked_refresh_token_is_rejected(bc_sandbox: BusinessCentral) -> None:
    base = bc_sandbox.server.base_url
    tokens = redeem(base, sign_in(base)).json()
    bc_sandbox.admin.post("/_sandbox/oauth/revoke").raise_for_status()
    answer = refresh(base, tokens["refresh_token"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_cancel_redirects_with_access_denied(bc_sandbox: BusinessCentral) -> None:
    cancelled = sign_in(bc_sandbox.server.base_url, choice="deny")
    assert cancelled.code == ""
    credentials = SandboxCredentials()
    answer = httpx.post(
        authorize_url(bc_sandbox.server.base_url, credentials),
        data={
            "client_id": credentials.client_id,
            "response_type": "code",
            "redirect_uri": "http://127.0.0.1:9/callback",
            "scope": OAUTH_SCOPE,
            "state": "s",
            "code_challenge": "c" * 43,
            "code_challenge_method": "S256",
            "consent": "deny",
        },
        follow_redirects=False,
    )
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["s"]


def test_authorize_requires_pkce(bc_sandbox: BusinessCentral) -> None:
    credentials = SandboxCredentials()
    answer = httpx.get(
        authorize_url(bc_sandbox.server.base_url, credentials),
        params={
            "client_id": credentials.client_id,
            "response_type": "code",
            "redirect_uri": "http://127.0.0.1:9/callback",
            "scope": OAUTH_SCOPE,
            "state": "s",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]


def test_unknown_client_gets_an_error_page(bc_sandbox: BusinessCentral) -> None:
    credentials = SandboxCredentials()
    answer = httpx.get(
        authorize_url(bc_sandbox.server.base_url, credentials),
        params={"client_id": "someone-else", "redirect_uri": "http://127.0.0.1:9/callback"},
        follow_redirects=False,
    )
    assert answer.status_code == 400
    assert "AADSTS700016" in answer.text


def test_token_requests_are_counted(bc_sandbox: BusinessCentral) -> None:
    base = bc_sandbox.server.base_url
    tokens = redeem(base, sign_in(base)).json()
    refresh(base, tokens["refresh_token"])
    refresh(base, tokens["refresh_token"])
    stats = bc_sandbox.admin.get("/_sandbox/oauth/stats").json()["token_requests"]
    assert stats["authorization_code"] == 1
    assert stats["refresh_token"] == 2
