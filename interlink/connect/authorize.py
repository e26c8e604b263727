"""The authorization code grant inside the connect flow: to the identity provider and back.

``begin`` stores a pending authorization (the PKCE verifier, the redirect URI,
the fields the user typed and the link token, encrypted) under the hash of a random
``state``, and returns the identity provider's authorize URL. It also returns
a random value for a cookie that binds the authorization to this browser.
``finish`` consumes the authorization named by the returned ``state`` once,
checks the cookie, and redeems the code with the verifier. A ``state``
that is unknown, expired (after ``AUTHORIZATION_LIFETIME``), already used or
presented by another browser is rejected.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from interlink.api.services import Services
from interlink.connect.sessions import session_problem
from interlink.connectors import oauth
from interlink.connectors.base import AuthScheme, Integration
from interlink.connectors.errors import ConnectorError
from interlink.connectors.registry import get_integration
from interlink.crypto import hash_token
from interlink.errors import InterlinkError
from interlink.settings import Settings
from interlink.store.link_sessions import LinkSessionRow, get_session, insert_authorization, use_authorization
from interlink.store.oauth import OAuthClientSettings, load_oauth_client

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/connect/oauth/callback"
AUTHORIZATION_LIFETIME = timedelta(minutes=15)
BROWSER_COOKIE = "interlink_oauth"


class AuthorizationFailed(InterlinkError):
    """The sign-in at the identity provider did not give usable tokens; the message is for the user.

    ``row``, ``token`` and ``integration`` are set when the failure belongs to
    a known session, so that the page can show the form again beside the message.
    """

    def __init__(
        self,
        message: str,
        *,
        row: LinkSessionRow | None = None,
        token: str | None = None,
        integration: Integration | None = None,
        detail: str | None = None,
        values: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.row = row
        self.token = token
        self.integration = integration
        self.detail = detail
        self.values = dict(values or {})


@dataclass(frozen=True)
class AuthorizationStart:
    url: str
    browser_value: str


@dataclass(frozen=True)
class Authorized:
    """A finished sign-in: the session, and credentials with the tokens, ready to be checked live."""

    row: LinkSessionRow
    token: str
    integration: Integration
    scheme: AuthScheme
    credentials: dict[str, str]
    typed: dict[str, str]


def callback_url(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + CALLBACK_PATH


async def oauth_client(services: Services, integration: str) -> OAuthClientSettings | None:
    async with services.db.read() as connection:
        return await load_oauth_client(connection, services.credentials, integration)


def _fill(template: str, typed: Mapping[str, str], integration: Integration) -> str:
    try:
        return oauth.fill_url(template, typed)
    except ValueError as exc:
        raise AuthorizationFailed(
            f"Sign-in to {integration.label} is not possible with these values. Fill in every field.",
            detail=str(exc),
            values=typed,
        ) from exc


async def begin(
    services: Services,
    row: LinkSessionRow,
    token: str,
    integration: Integration,
    spec: oauth.AuthorizationCodeSpec,
    typed: Mapping[str, str],
) -> AuthorizationStart:
    """Store a pending authorization and return the URL of the identity provider's consent page."""
    client = await oauth_client(services, integration.name)
    if client is None:
        raise AuthorizationFailed(
            f"Sign-in to {integration.label} is not set up in this Interlink yet. "
            "Ask the company that sent you this link to set it up.",
            values=typed,
        )
    authorize_url = _fill(client.authorize_url or spec.authorize_url, typed, integration)

    pkce = oauth.Pkce.generate()
    state = secrets.token_urlsafe(32)
    browser_value = secrets.token_urlsafe(32)
    redirect_uri = callback_url(services.settings)
    sealed = services.credentials.encrypt(
        {
            "code_verifier": pkce.verifier,
            "redirect_uri": redirect_uri,
            "fields": json.dumps(dict(typed)),
            "link_token": token,
        }
    )

    now = services.clock()
    async with services.db.write() as connection:
        await insert_authorization(
            connection,
            link_session_id=row.id,
            state_hash=hash_token(state),
            browser_hash=hash_token(browser_value),
            integration=integration.name,
            auth_scheme=spec.scheme,
            sealed=sealed,
            now=now,
            expires_at=now + AUTHORIZATION_LIFETIME,
        )

    url = oauth.authorization_url(
        authorize_url,
        oauth.OAuthClient(client.client_id, client.client_secret),
        scope=spec.scope,
        redirect_uri=redirect_uri,
        state=state,
        pkce=pkce,
    )
    logger.info("connect.oauth.started link_session_id=%s integration=%s", row.id, integration.name)
    return AuthorizationStart(url, browser_value)


async def finish(
    services: Services,
    *,
    state: str,
    code: str | None,
    error: str | None,
    error_description: str | None,
    browser_value: str | None,
) -> Authorized:
    """Consume the pending authorization named by ``state`` and redeem ``code`` for tokens."""
    now = services.clock()
    async with services.db.write() as connection:
        pending = await use_authorization(connection, hash_token(state), now=now) if state else None
        row = await get_session(connection, pending.link_session_id) if pending else None
    if pending is None or row is None:
        raise AuthorizationFailed(
            "This sign-in is unknown, was already used, or took too long. "
            "Open the link you were given again to start over."
        )
    integration = get_integration(pending.integration)
    scheme = integration.auth_scheme(pending.auth_scheme) if integration else None
    spec = oauth.authorization_code_spec(pending.integration, pending.auth_scheme)
    if integration is None or scheme is None or spec is None:
        raise AuthorizationFailed(f"The integration {pending.integration} is no longer installed here.")
    sealed = services.credentials.decrypt(pending.sealed)
    typed: dict[str, str] = json.loads(sealed["fields"])
    token = sealed["link_token"]

    def failed(message: str, detail: str | None = None) -> AuthorizationFailed:
        return AuthorizationFailed(
            message, row=row, token=token, integration=integration, detail=detail, values=typed
        )

    if browser_value is None or not secrets.compare_digest(hash_token(browser_value), pending.browser_hash):
        logger.warning("connect.oauth.browser_mismatch link_session_id=%s", row.id)
        raise failed("This sign-in was started in another browser window. Start again here.")
    problem = session_problem(row, now)
    if problem is not None:
        raise AuthorizationFailed(f"This link can no longer be used ({problem}).")
    if error is not None:
        logger.info("connect.oauth.declined link_session_id=%s error=%s", row.id, error)
        message = (
            f"The sign-in to {integration.label} was cancelled, so nothing was connected. "
            "Try again when ready."
            if error == "access_denied"
            else f"The sign-in to {integration.label} failed, so nothing was connected."
        )
        raise failed(message, f"{error}: {error_description or 'no description'}")
    if not code:
        raise failed(f"{integration.label} sent the browser back without a code. Try again.")

    client = await oauth_client(services, integration.name)
    if client is None:
        raise failed(f"Sign-in to {integration.label} is no longer set up in this Interlink.")
    token_url = _fill(client.token_url or spec.token_url, typed, integration)
    try:
        async with services.http_factory() as http:
            tokens = await oauth.redeem_code(
                http,
                token_url,
                oauth.OAuthClient(client.client_id, client.client_secret),
                code=code,
                redirect_uri=sealed["redirect_uri"],
                code_verifier=sealed["code_verifier"],
                scope=spec.scope,
                now=services.clock(),
            )
    except ConnectorError as exc:
        logger.warning(
            "connect.oauth.redeem_failed link_session_id=%s code=%s error=%s", row.id, exc.reason_code, exc
        )
        raise failed(f"{integration.label} did not complete the sign-in. Try again.", str(exc)) from exc
    credentials = {
        **typed,
        **tokens.credentials(),
        oauth.CLIENT_ID: client.client_id,
        oauth.CLIENT_SECRET: client.client_secret,
        oauth.TOKEN_URL: token_url,
    }
    logger.info("connect.oauth.authorized link_session_id=%s integration=%s", row.id, integration.name)
    return Authorized(row, token, integration, scheme, credentials, typed)
