"""The sandbox's identity provider: the authorization code grant with PKCE and rotating refresh tokens.

It follows the Microsoft identity platform's v2.0 endpoints as documented in
"Microsoft identity platform and OAuth 2.0 authorization code flow"
(learn.microsoft.com, entra/identity-platform/v2-oauth2-auth-code-flow).
``/{tenant}/oauth2/v2.0/authorize`` takes ``client_id``, ``response_type=code``,
``redirect_uri``, ``response_mode``, ``scope``, ``state``, ``code_challenge`` and
``code_challenge_method``, and redirects back with ``code`` and ``state`` (or
``error`` and ``error_description``). The token endpoint redeems the code with
``grant_type=authorization_code``, ``code``, ``redirect_uri``, ``code_verifier``
and the client's secret, and renews tokens with ``grant_type=refresh_token``.
Codes live about ten minutes, as that page says.

Two things are stricter than that page, so that clients are tested against
the harder case. PKCE is required. Refresh tokens rotate: each works once,
and presenting one again answers ``invalid_grant``. Microsoft's page says its
refresh tokens are not revoked when used, but RFC 6749 section 6 lets a
server revoke them, and other providers do.

Instead of a sign-in, ``authorize`` shows a consent page with an "Allow"
button (a form POST) and a "Cancel" button.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from interlink.sandbox.dynamics_bc.jsonbody import json_response

if TYPE_CHECKING:
    from interlink.sandbox.dynamics_bc.app import Sandbox, SandboxCredentials

API_RESOURCE = "https://api.businesscentral.dynamics.com/"
CODE_LIFETIME = timedelta(minutes=10)
_AUTHORIZE_PARAMETERS = (
    "client_id",
    "response_type",
    "redirect_uri",
    "response_mode",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    expires_at: datetime
    redeemed: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    scope: str
    redeemed: bool = False


@dataclass
class IdentityProvider:
    """Issued codes and refresh tokens, and how many token requests each grant type received."""

    # Redirect URIs the app registration accepts; empty accepts any http(s) URI.
    redirect_uris: list[str] = field(default_factory=list)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    token_requests: Counter[str] = field(default_factory=Counter)


def oauth_error(status: int, code: str, description: str, number: int) -> Response:
    body = {
        "error": code,
        "error_description": f"AADSTS{number}: {description}",
        "error_codes": [number],
        "timestamp": datetime.now().strftime("%Y-%m-%d %H:%M:%SZ"),
    }
    return json_response(body, status)


def _redirect_uri_problem(identity: IdentityProvider, redirect_uri: str) -> str | None:
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"The redirect URI '{redirect_uri}' is not an absolute http or https URI."
    if identity.redirect_uris and redirect_uri not in identity.redirect_uris:
        return f"The redirect URI '{redirect_uri}' does not match the application's redirect URIs."
    return None


def _error_page(status: int, message: str) -> HTMLResponse:
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sign-in error</title></head>"
        "<body><h1>Sorry, but we're having trouble signing you in.</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status)


def _redirect(redirect_uri: str, **values: str) -> RedirectResponse:
    separator = "&" if urlsplit(redirect_uri).query else "?"
    query = urlencode({name: value for name, value in values.items() if value})
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)


async def authorize(sandbox: Sandbox, request: Request) -> Response:
    """Show the consent page (GET), or redirect back with the user's choice (POST)."""
    if request.method == "POST":
        params = {name: str(value) for name, value in (await request.form()).items()}
    else:
        params = dict(request.query_params)

    expected = sandbox.credentials
    if request.path_params["tenant"] != expected.tenant_id:
        return _error_page(400, f"AADSTS90002: Tenant '{request.path_params['tenant']}' not found.")
    if params.get("client_id") != expected.client_id:
        return _error_page(
            400,
            f"AADSTS700016: Application with identifier '{params.get('client_id', '')}' was not found "
            "in the directory.",
        )
    redirect_uri = params.get("redirect_uri", "")
    problem = _redirect_uri_problem(sandbox.identity, redirect_uri)
    if problem is not None:
        return _error_page(400, f"AADSTS50011: {problem}")

    state = params.get("state", "")
    invalid = _invalid_request(params)
    if invalid is not None:
        code, description = invalid
        return _redirect(redirect_uri, error=code, error_description=description, state=state)
    if request.method == "GET":
        return _consent_page(expected, params)
    if params.get("consent") != "allow":
        return _redirect(
            redirect_uri,
            error="access_denied",
            error_description="AADSTS65004: User declined to consent to access the app.",
            state=state,
        )

    code = secrets.token_urlsafe(32)
    sandbox.identity.codes[code] = AuthorizationCode(
        client_id=params["client_id"],
        redirect_uri=redirect_uri,
        scope=params["scope"],
        code_challenge=params["code_challenge"],
        code_challenge_method=params.get("code_challenge_method", "plain"),
        expires_at=sandbox.data.clock() + CODE_LIFETIME,
    )
    return _redirect(redirect_uri, code=code, state=state)


def _invalid_request(params: dict[str, str]) -> tuple[str, str] | None:
    """Return the ``error`` and ``error_description`` for an authorize request the sandbox rejects."""
    if params.get("response_type") != "code":
        return "unsupported_response_type", "AADSTS700054: response_type must be 'code'."
    if params.get("response_mode", "query") != "query":
        return "invalid_request", "AADSTS900144: this sandbox answers only response_mode=query."
    if not any(scope.startswith(API_RESOURCE) for scope in params.get("scope", "").split()):
        return "invalid_scope", f"AADSTS70011: the scope must name a permission of {API_RESOURCE}."
    if not params.get("code_challenge"):
        return "invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required."
    if params.get("code_challenge_method", "plain") not in ("plain", "S256"):
        return "invalid_request", "AADSTS501491: code_challenge_method must be 'plain' or 'S256'."
    return None


def _consent_page(credentials: SandboxCredentials, params: dict[str, str]) -> HTMLResponse:
    hidden = "".join(
        f"<input type='hidden' name='{name}' value='{html.escape(params[name], quote=True)}'>"
        for name in _AUTHORIZE_PARAMETERS
        if name in params
    )
    scopes = "".join(f"<li>{html.escape(scope)}</li>" for scope in params.get("scope", "").split())
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Permissions requested</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; }}
button {{ font: inherit; padding: .5rem 1.25rem; margin-right: .5rem; }}
</style></head>
<body>
<p>Business Central sandbox, tenant {html.escape(credentials.tenant_id)}</p>
<h1>Permissions requested</h1>
<p>The application {html.escape(params["client_id"])} asks for:</p>
<ul>{scopes}</ul>
<form method="post">{hidden}
<button type="submit" name="consent" value="allow">Allow</button>
<button type="submit" name="consent" value="deny">Cancel</button>
</form>
</body></html>"""
    return HTMLResponse(body)


def _pkce_matches(code: AuthorizationCode, verifier: str) -> bool:
    if code.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return secrets.compare_digest(computed, code.code_challenge)


def redeem_code(sandbox: Sandbox, form: dict[str, str]) -> Response:
    """Redeem an authorization code after checking it, its redirect URI and the PKCE verifier."""
    code = sandbox.identity.codes.get(form.get("code", ""))
    if code is None:
        return oauth_error(400, "invalid_grant", "The value of the 'code' parameter is not valid.", 70000)
    if code.redeemed:
        return oauth_error(
            400,
            "invalid_grant",
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code.",
            54005,
        )
    if code.expires_at <= sandbox.data.clock():
        return oauth_error(400, "invalid_grant", "The provided authorization code has expired.", 70008)
    if code.client_id != form.get("client_id"):
        return oauth_error(400, "invalid_grant", "The code was issued to another application.", 70000)
    if code.redirect_uri != form.get("redirect_uri"):
        return oauth_error(
            400, "invalid_grant", "The redirect URI differs from the authorization request's.", 50011
        )
    if not _pkce_matches(code, form.get("code_verifier", "")):
        return oauth_error(
            400,
            "invalid_grant",
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            501481,
        )
    code.redeemed = True
    return _issue(sandbox, code.client_id, code.scope)


def redeem_refresh_token(sandbox: Sandbox, form: dict[str, str]) -> Response:
    """Redeem a refresh token: the presented token stops working and a new one is issued."""
    grant = sandbox.identity.refresh_tokens.get(form.get("refresh_token", ""))
    if grant is None:
        return oauth_error(400, "invalid_grant", "The refresh token is not valid or was revoked.", 50173)
    if grant.redeemed:
        return oauth_error(400, "invalid_grant", "The refresh token has already been redeemed.", 70000)
    if grant.client_id != form.get("client_id"):
        return oauth_error(400, "invalid_grant", "The refresh token belongs to another application.", 70000)
    grant.redeemed = True
    return _issue(sandbox, grant.client_id, grant.scope)


def _issue(sandbox: Sandbox, client_id: str, scope: str) -> Response:
    access_token = secrets.token_urlsafe(32)
    sandbox.tokens[access_token] = sandbox.data.clock() + sandbox.token_lifetime
    lifetime = int(sandbox.token_lifetime.total_seconds())
    body: dict[str, object] = {
        "token_type": "Bearer",
        "scope": " ".join(part for part in scope.split() if part != "offline_access"),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }
    if "offline_access" in scope.split():
        refresh_token = secrets.token_urlsafe(48)
        sandbox.identity.refresh_tokens[refresh_token] = RefreshGrant(client_id, scope)
        body["refresh_token"] = refresh_token
    return json_response(body)


async def admin_stats(sandbox: Sandbox, request: Request) -> Response:
    """Return how many token requests each grant type received."""
    return json_response({"token_requests": dict(sandbox.identity.token_requests)})


async def admin_revoke(sandbox: Sandbox, request: Request) -> Response:
    """Revoke every refresh token, as an administrator who removes the app's consent would."""
    sandbox.identity.refresh_tokens.clear()
    return Response(status_code=204)
