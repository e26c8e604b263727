"""Unit tests of the generic OAuth code: PKCE, URL templates, token responses, in-process single flight.

The token endpoint here is an ``httpx.MockTransport``; the tests against a
real identity provider (the Business Central sandbox) are in ``test_refresh.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from interlink.connectors import oauth
from interlink.connectors.errors import AuthenticationError, SourceRejected

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TOKEN_URL = "https://login.test/tenant/oauth2/v2.0/token"


def test_s256_challenge_matches_rfc_7636_example() -> None:
    # RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oauth.s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_generated_verifier_has_valid_length() -> None:
    pkce = oauth.Pkce.generate()
    assert 43 <= len(pkce.verifier) <= 128
    assert pkce.challenge == oauth.s256_challenge(pkce.verifier)
    assert oauth.Pkce.generate().verifier != pkce.verifier


def test_fill_url_quotes_field_values() -> None:
    filled = oauth.fill_url("https://login.test/{tenant_id}/authorize", {"tenant_id": "a/b c"})
    assert filled == "https://login.test/a%2Fb%20c/authorize"


def test_fill_url_names_missing_field() -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        oauth.fill_url("https://login.test/{tenant_id}/authorize", {})


def test_authorization_url_carries_pkce_and_state() -> None:
    pkce = oauth.Pkce.generate()
    url = oauth.authorization_url(
        "https://login.test/t/authorize?prompt=select_account",
        oauth.OAuthClient("client-1", "secret"),
        scope="api offline_access",
        redirect_uri="https://interlink.test/connect/oauth/callback",
        state="state-1",
        pkce=pkce,
    )
    query = parse_qs(urlsplit(url).query)
    assert query["prompt"] == ["select_account"]
    assert query["code_challenge"] == [pkce.challenge]
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] == ["state-1"]
    assert query["response_type"] == ["code"]
    assert "client_secret" not in query


def _credentials(expires_at: datetime) -> dict[str, str]:
    return {
        oauth.ACCESS_TOKEN: "access-1",
        oauth.REFRESH_TOKEN: "refresh-1",
        oauth.EXPIRES_AT: expires_at.isoformat(),
        oauth.CLIENT_ID: "client-1",
        oauth.CLIENT_SECRET: "secret-1",
        oauth.TOKEN_URL: TOKEN_URL,
    }


class RotatingProvider:
    """A token endpoint whose refresh tokens work once, counting the refresh requests it receives."""

    def __init__(self, *, rotate: bool = True, delay: float = 0.0) -> None:
        self.rotate = rotate
        self.delay = delay
        self.requests = 0
        self.live = {"refresh-1"}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        form = {name: values[0] for name, values in parse_qs(request.content.decode()).items()}
        await asyncio.sleep(self.delay)
        presented = form["refresh_token"]
        if presented not in self.live:
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "used"})
        body: dict[str, object] = {"access_token": f"access-{self.requests + 1}", "expires_in": 3600}
        if self.rotate:
            self.live.discard(presented)
            fresh = f"refresh-{self.requests + 1}"
            self.live.add(fresh)
            body["refresh_token"] = fresh
        return httpx.Response(200, json=body)


def _session(
    http: httpx.AsyncClient,
    credentials: Mapping[str, str],
    saved: list[dict[str, str]],
    coordinator: oauth.RefreshCoordinator,
) -> oauth.OAuthSession:
    async def save(values: Mapping[str, str]) -> None:
        saved.append(dict(values))

    return oauth.OAuthSession(
        http,
        credentials,
        connection_id="con_1",
        scope="api offline_access",
        save_credentials=save,
        clock=lambda: NOW,
        coordinator=coordinator,
    )


async def test_fresh_token_is_used_without_refresh() -> None:
    provider = RotatingProvider()
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        session = _session(http, _credentials(NOW + timedelta(hours=1)), [], oauth.LocalRefreshCoordinator())
        assert await session.access_token() == "access-1"
    assert provider.requests == 0


async def test_expiring_token_is_refreshed_and_saved_first() -> None:
    provider = RotatingProvider()
    saved: list[dict[str, str]] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        credentials = _credentials(NOW + timedelta(minutes=1))
        session = _session(http, credentials, saved, oauth.LocalRefreshCoordinator())
        token = await session.access_token()
    assert token == "access-2"
    assert saved == [
        {
            oauth.ACCESS_TOKEN: "access-2",
            oauth.REFRESH_TOKEN: "refresh-2",
            oauth.EXPIRES_AT: (NOW + timedelta(hours=1)).isoformat(),
        }
    ]


async def test_refresh_without_new_refresh_token_keeps_old() -> None:
    provider = RotatingProvider(rotate=False)
    saved: list[dict[str, str]] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        credentials = _credentials(NOW - timedelta(minutes=1))
        session = _session(http, credentials, saved, oauth.LocalRefreshCoordinator())
        await session.access_token()
    assert saved[0][oauth.REFRESH_TOKEN] == "refresh-1"


async def test_invalid_grant_means_token_revoked() -> None:
    provider = RotatingProvider()
    provider.live.clear()
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        session = _session(http, _credentials(NOW), [], oauth.LocalRefreshCoordinator())
        with pytest.raises(AuthenticationError) as raised:
            await session.access_token()
    assert raised.value.reason_code == "token_revoked"


async def test_rejected_client_names_the_oauth_client() -> None:
    async def reject(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(reject)) as http:
        session = _session(http, _credentials(NOW), [], oauth.LocalRefreshCoordinator())
        with pytest.raises(AuthenticationError, match="oauth-client") as raised:
            await session.access_token()
    assert raised.value.reason_code == "credentials_invalid"


async def test_other_token_error_is_rejected_request() -> None:
    async def reject(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=json.dumps({"error": "invalid_scope"}))

    async with httpx.AsyncClient(transport=httpx.MockTransport(reject)) as http:
        session = _session(http, _credentials(NOW), [], oauth.LocalRefreshCoordinator())
        with pytest.raises(SourceRejected, match="invalid_scope"):
            await session.access_token()


async def test_sessions_of_one_process_refresh_once() -> None:
    provider = RotatingProvider(delay=0.05)
    coordinator = oauth.LocalRefreshCoordinator()
    saved: list[dict[str, str]] = []
    credentials = _credentials(NOW + timedelta(minutes=1))
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        sessions = [_session(http, credentials, saved, coordinator) for _ in range(3)]
        tokens = await asyncio.gather(*(session.access_token() for session in sessions))
    assert provider.requests == 1
    assert tokens == ["access-2", "access-2", "access-2"]
    assert len(saved) == 1


async def test_rejected_token_is_replaced_by_newer_one() -> None:
    provider = RotatingProvider()
    coordinator = oauth.LocalRefreshCoordinator()
    credentials = _credentials(NOW + timedelta(hours=1))
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        first = _session(http, credentials, [], coordinator)
        second = _session(http, credentials, [], coordinator)
        assert await first.access_token(renew=True) == "access-2"
        assert await second.access_token(renew=True) == "access-2"
    assert provider.requests == 1


async def test_missing_access_token_requires_reconnect() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(AuthenticationError) as raised:
            _session(http, {}, [], oauth.LocalRefreshCoordinator())
    assert raised.value.reason_code == "token_revoked"
