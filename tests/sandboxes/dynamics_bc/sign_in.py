"""Sign in at the sandbox's identity provider the way a browser would, without a browser.

``sign_in`` opens the consent page, presses "Allow" (the form POST) and
returns the authorization code from the redirect, for tests that need a
code or tokens but not the connect pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

from interlink.connectors.dynamics_bc.client import OAUTH_SCOPE
from interlink.connectors.oauth import Pkce
from interlink.sandbox.dynamics_bc import SandboxCredentials

REDIRECT_URI = "http://127.0.0.1:9/callback"
_HIDDEN = re.compile(r"<input type='hidden' name='(?P<name>[a-z_]+)' value='(?P<value>[^']*)'>")


@dataclass(frozen=True)
class SignIn:
    code: str
    pkce: Pkce
    redirect_uri: str


def authorize_url(base_url: str, credentials: SandboxCredentials) -> str:
    return f"{base_url}/{credentials.tenant_id}/oauth2/v2.0/authorize"


def token_url(base_url: str, credentials: SandboxCredentials) -> str:
    return f"{base_url}/{credentials.tenant_id}/oauth2/v2.0/token"


def sign_in(base_url: str, *, choice: str = "allow", redirect_uri: str = REDIRECT_URI) -> SignIn:
    """Consent at the sandbox and return the code it redirects with; the redirect is not followed."""
    credentials = SandboxCredentials()
    pkce = Pkce.generate()
    params = {
        "client_id": credentials.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "response_mode": "query",
        "scope": OAUTH_SCOPE,
        "state": "test-state",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    url = authorize_url(base_url, credentials)
    page = httpx.get(url, params=params)
    page.raise_for_status()
    form = {match["name"]: match["value"] for match in _HIDDEN.finditer(page.text)}
    answer = httpx.post(url, data={**form, "consent": choice}, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert query["state"] == "test-state"
    return SignIn(query.get("code", ""), pkce, redirect_uri)


def redeem(base_url: str, signed_in: SignIn, *, verifier: str | None = None) -> httpx.Response:
    credentials = SandboxCredentials()
    return httpx.post(
        token_url(base_url, credentials),
        data={
            "grant_type": "authorization_code",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "code": signed_in.code,
            "redirect_uri": signed_in.redirect_uri,
            "code_verifier": signed_in.pkce.verifier if verifier is None else verifier,
            "scope": OAUTH_SCOPE,
        },
    )


def refresh(base_url: str, refresh_token: str) -> httpx.Response:
    credentials = SandboxCredentials()
    return httpx.post(
        token_url(base_url, credentials),
        data={
            "grant_type": "refresh_token",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "refresh_token": refresh_token,
            "scope": OAUTH_SCOPE,
        },
    )
