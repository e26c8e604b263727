"""OAuth 2.0 authorization code grant with PKCE, and access tokens that refresh themselves.

Every integration that signs users in through an identity provider reuses
this module. It declares its scheme once with ``register_authorization_code``
(the authorize and token URLs, which may name credential fields such as
``{tenant_id}``, and the scope). The connect flow then builds the authorize
URL (``authorization_url``) with a PKCE S256 challenge and a ``state``, and
redeems the returned code (``redeem_code``). A connector keeps the tokens in
an ``OAuthSession``, which refreshes them shortly before they expire and
once after the source rejects the access token.

Refreshing is single-flight per connection. Identity providers may rotate
refresh tokens, so that each works once: two workers that refresh the same
expiring token at once would see one of them rejected with ``invalid_grant``
and the connection wrongly marked for reauthorization. The session therefore
refreshes under a lease from the process-wide ``RefreshCoordinator``. Inside
the lease it first reads the freshest tokens, adopts them when another
worker has refreshed already, and otherwise calls the token endpoint and
stores the new tokens (``save_credentials``) before it uses them. The default
coordinator excludes refreshes within one process. ``use_refresh_coordinator``
installs one that spans processes, such as the database lease in
``interlink.store.oauth``.

``invalid_grant`` from the token endpoint raises
``AuthenticationError(reason_code="token_revoked")``, which moves the
connection to ``reauthorization_required``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import string
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpx

from interlink.connectors.base import CredentialField
from interlink.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    SourceDataError,
    SourceRejected,
    SourceTimeout,
)
from interlink.connectors.http import RetryPolicy, error_for_response, redact_url, send

logger = logging.getLogger(__name__)

# Names of the credential fields of a connection made with the authorization
# code grant (names, not values). The connect flow fills them; a user never types them.
ACCESS_TOKEN = "access_token"  # noqa: S105
REFRESH_TOKEN = "refresh_token"  # noqa: S105
EXPIRES_AT = "token_expires_at"
CLIENT_ID = "client_id"
CLIENT_SECRET = "client_secret"  # noqa: S105
TOKEN_URL = "token_url"  # noqa: S105
FLOW_FIELD_NAMES = frozenset({ACCESS_TOKEN, REFRESH_TOKEN, EXPIRES_AT, CLIENT_ID, CLIENT_SECRET, TOKEN_URL})

# An access token is refreshed once less than this much of its lifetime remains.
REFRESH_MARGIN = timedelta(minutes=5)
# Assumed lifetime when a token response has no ``expires_in``.
DEFAULT_LIFETIME = timedelta(hours=1)
# RFC 7636 allows verifiers of 43 to 128 characters; 64 random bytes give 86.
_VERIFIER_BYTES = 64
# A refresh is sent once: a retried request whose first attempt reached the
# provider would present a refresh token that rotation has already retired.
_REFRESH_POLICY = RetryPolicy(max_attempts=1)
_CODE_POLICY = RetryPolicy(max_attempts=1)
_PLACEHOLDER_CHARACTERS = set(string.ascii_letters + string.digits + "_")


def flow_credential_fields() -> tuple[CredentialField, ...]:
    """Return the credential fields that the connect flow stores for an authorization code scheme."""
    by_flow = "Filled by the connect flow after the user signs in."
    return (
        CredentialField(ACCESS_TOKEN, "Access token", by_flow, secret=True),
        CredentialField(REFRESH_TOKEN, "Refresh token", by_flow, secret=True, required=False),
        CredentialField(EXPIRES_AT, "Access token expiry", f"RFC 3339 time. {by_flow}", required=False),
        CredentialField(
            CLIENT_ID, "OAuth client ID", f"The operator's OAuth client. {by_flow}", required=False
        ),
        CredentialField(
            CLIENT_SECRET,
            "OAuth client secret",
            f"The operator's OAuth client. {by_flow}",
            secret=True,
            required=False,
        ),
        CredentialField(
            TOKEN_URL, "Token URL", f"The identity provider's token endpoint. {by_flow}", required=False
        ),
    )


@dataclass(frozen=True)
class AuthorizationCodeSpec:
    """An auth scheme that obtains its tokens through the authorization code grant.

    ``authorize_url`` and ``token_url`` are the defaults; they may name
    credential fields the user types, as in ``https://host/{tenant_id}/authorize``.
    The operator's OAuth client may override both.
    """

    integration: str
    scheme: str
    authorize_url: str
    token_url: str
    scope: str


_SPECS: dict[tuple[str, str], AuthorizationCodeSpec] = {}


def register_authorization_code(spec: AuthorizationCodeSpec) -> None:
    """Declare that ``spec.scheme`` of ``spec.integration`` uses the authorization code grant."""
    _SPECS[(spec.integration, spec.scheme)] = spec


def authorization_code_spec(integration: str, scheme: str) -> AuthorizationCodeSpec | None:
    return _SPECS.get((integration, scheme))


def user_fields(fields: tuple[CredentialField, ...]) -> list[CredentialField]:
    """Return the fields of an authorization code scheme that the user types."""
    return [field for field in fields if field.name not in FLOW_FIELD_NAMES]


def fill_url(template: str, fields: Mapping[str, str]) -> str:
    """Replace each ``{name}`` in ``template`` by the URL-quoted credential field ``name``.

    Raises ``ValueError`` naming a placeholder without a value.
    """
    parts: list[str] = []
    rest = template
    for _ in range(template.count("{") + 1):
        before, brace, after = rest.partition("{")
        parts.append(before)
        if not brace:
            break
        name, closing, rest = after.partition("}")
        if not closing or not name or not set(name) <= _PLACEHOLDER_CHARACTERS:
            raise ValueError(f"the URL template {template!r} has a malformed placeholder near {{{name}")
        value = fields.get(name, "").strip()
        if not value:
            raise ValueError(f"the URL template {template!r} needs the credential field {name!r}")
        parts.append(quote(value, safe=""))
    return "".join(parts)


@dataclass(frozen=True)
class OAuthClient:
    """The operator's OAuth client registered at the identity provider."""

    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Pkce:
    """A PKCE pair: the secret verifier and its S256 challenge (RFC 7636)."""

    verifier: str
    challenge: str

    @classmethod
    def generate(cls) -> Pkce:
        verifier = secrets.token_urlsafe(_VERIFIER_BYTES)
        return cls(verifier, s256_challenge(verifier))


def s256_challenge(verifier: str) -> str:
    """Return BASE64URL(SHA256(verifier)) without padding, as RFC 7636 section 4.2 defines S256."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    authorize_url: str, client: OAuthClient, *, scope: str, redirect_uri: str, state: str, pkce: Pkce
) -> str:
    """Build the URL that sends the user to the identity provider's consent page."""
    query = urlencode(
        {
            "client_id": client.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "response_mode": "query",
            "scope": scope,
            "state": state,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if urlsplit(authorize_url).query else "?"
    return f"{authorize_url}{separator}{query}"


@dataclass(frozen=True)
class TokenSet:
    """An access token with its expiry, and the refresh token that renews it."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime

    def credentials(self) -> dict[str, str]:
        values = {ACCESS_TOKEN: self.access_token, EXPIRES_AT: self.expires_at.isoformat()}
        if self.refresh_token is not None:
            values[REFRESH_TOKEN] = self.refresh_token
        return values

    def expires_within(self, margin: timedelta, now: datetime) -> bool:
        return self.expires_at - margin <= now

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, str]) -> TokenSet:
        """Read the tokens of a connection; raise ``AuthenticationError`` when there is no access token."""
        access_token = credentials.get(ACCESS_TOKEN, "")
        if not access_token:
            raise AuthenticationError(
                "the connection has no OAuth access token; reconnect it through the connect flow",
                reason_code="token_revoked",
            )
        try:
            expires_at = datetime.fromisoformat(credentials[EXPIRES_AT])
        except (KeyError, ValueError):
            # Unknown expiry: treat the token as expiring, so it is refreshed before use.
            expires_at = datetime.min.replace(tzinfo=UTC)
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        return cls(access_token, credentials.get(REFRESH_TOKEN) or None, expires_at)

    @classmethod
    def from_response(
        cls, body: Mapping[str, Any], now: datetime, *, previous_refresh_token: str | None
    ) -> TokenSet:
        """Read a token endpoint's response; a missing ``refresh_token`` keeps ``previous_refresh_token``."""
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise SourceDataError("the token endpoint returned no access_token")
        try:
            lifetime = timedelta(seconds=float(body.get("expires_in", DEFAULT_LIFETIME.total_seconds())))
        except (TypeError, ValueError) as exc:
            raise SourceDataError(
                f"the token endpoint returned expires_in={body.get('expires_in')!r}, not a number of seconds"
            ) from exc
        refresh_token = body.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            refresh_token = previous_refresh_token
        return cls(access_token, refresh_token, now + lifetime)


def classify_token_response(response: httpx.Response) -> ConnectorError | None:
    """Classify a token endpoint response by its OAuth ``error`` code (RFC 6749 section 5.2)."""
    if response.status_code in (400, 401):
        code = _error_code(response)
        where = redact_url(response.request.url)
        if code == "invalid_grant":
            return AuthenticationError(
                f"the token endpoint {where} rejected the grant (invalid_grant): the refresh token or "
                "authorization code is expired, revoked or already used; reconnect through the connect flow",
                status_code=response.status_code,
                reason_code="token_revoked",
            )
        if code in ("invalid_client", "unauthorized_client") or response.status_code == 401:
            return AuthenticationError(
                f"the token endpoint {where} rejected the OAuth client ({code or response.status_code}); "
                "check the client id and secret set with PUT /v1/integrations/{name}/oauth-client",
                status_code=response.status_code,
            )
        return SourceRejected(
            f"the token endpoint {where} rejected the request ({code or 'no error code'})",
            status_code=response.status_code,
        )
    error = error_for_response(response)
    if error is not None:
        return error
    where = redact_url(response.request.url)
    try:
        body = json.loads(response.content)
    except ValueError:
        return SourceDataError(f"the token endpoint {where} returned a body that is not JSON")
    if not isinstance(body, dict):
        return SourceDataError(f"the token endpoint {where} returned JSON that is not an object")
    return None


def _error_code(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


async def _token_request(
    http: httpx.AsyncClient,
    token_url: str,
    form: Mapping[str, str],
    *,
    policy: RetryPolicy,
    request_timeout: float | None,
) -> dict[str, Any]:
    request = http.build_request(
        "POST", token_url, data=dict(form), headers={"Accept": "application/json"}, timeout=request_timeout
    )
    response = await send(http, request, policy=policy, classify=classify_token_response)
    body: dict[str, Any] = json.loads(response.content)
    return body


async def redeem_code(
    http: httpx.AsyncClient,
    token_url: str,
    client: OAuthClient,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    scope: str,
    now: datetime,
    request_timeout: float | None = None,
) -> TokenSet:
    """Exchange an authorization code and its PKCE verifier for tokens."""
    form = {
        "grant_type": "authorization_code",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
        "scope": scope,
    }
    body = await _token_request(http, token_url, form, policy=_CODE_POLICY, request_timeout=request_timeout)
    return TokenSet.from_response(body, now, previous_refresh_token=None)


async def refresh_tokens(
    http: httpx.AsyncClient,
    token_url: str,
    client: OAuthClient,
    *,
    refresh_token: str,
    scope: str,
    now: datetime,
    request_timeout: float | None = None,
) -> TokenSet:
    """Redeem a refresh token; a response without a new refresh token keeps the old one."""
    form = {
        "grant_type": "refresh_token",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "refresh_token": refresh_token,
        "scope": scope,
    }
    body = await _token_request(
        http, token_url, form, policy=_REFRESH_POLICY, request_timeout=request_timeout
    )
    return TokenSet.from_response(body, now, previous_refresh_token=refresh_token)


class RefreshLease(Protocol):
    """Exclusive permission to refresh one connection's tokens, held by one session at a time."""

    async def latest(self, known: Mapping[str, str]) -> Mapping[str, str]:
        """Return the freshest credentials of the connection, given the caller's copy ``known``."""
        ...

    async def refreshed(self, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        """Note that the caller replaced ``old`` by ``new``, after storing ``new``."""
        ...


class RefreshCoordinator(Protocol):
    """A source of refresh leases, so that at most one refresh per connection runs at a time.

    ``lease`` waits for the lease a bounded time and raises ``TimeoutError``
    when another holder keeps it longer.
    """

    def lease(self, connection_id: str) -> AbstractAsyncContextManager[RefreshLease]: ...


class LocalRefreshCoordinator:
    """A refresh coordinator for one process, which also remembers what each refresh token became.

    Two connectors of one connection (two entities syncing at once) each hold
    their own copy of the tokens. The map from a redeemed refresh token to its
    successors lets the second adopt the first one's result instead of
    presenting a refresh token that rotation has retired.
    """

    max_remembered = 10_000

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._successors: OrderedDict[str, dict[str, str]] = OrderedDict()

    @asynccontextmanager
    async def lease(self, connection_id: str) -> AsyncIterator[RefreshLease]:
        lock = self._locks.setdefault(connection_id, asyncio.Lock())
        async with lock:
            yield _LocalLease(self)

    def successor(self, credentials: Mapping[str, str]) -> dict[str, str] | None:
        refresh_token = credentials.get(REFRESH_TOKEN)
        return self._successors.get(_fingerprint(refresh_token)) if refresh_token else None

    def remember(self, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        refresh_token = old.get(REFRESH_TOKEN)
        if not refresh_token or refresh_token == new.get(REFRESH_TOKEN):
            return
        self._successors[_fingerprint(refresh_token)] = dict(new)
        while len(self._successors) > self.max_remembered:
            self._successors.popitem(last=False)


class _LocalLease:
    def __init__(self, coordinator: LocalRefreshCoordinator) -> None:
        self.coordinator = coordinator

    async def latest(self, known: Mapping[str, str]) -> Mapping[str, str]:
        current = known
        # Each remembered step retires one refresh token, so the chain is short;
        # the bound only guards against a cycle.
        for _ in range(100):
            following = self.coordinator.successor(current)
            if following is None:
                break
            current = following
        return current

    async def refreshed(self, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        self.coordinator.remember(old, new)


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_coordinator: RefreshCoordinator = LocalRefreshCoordinator()


def use_refresh_coordinator(coordinator: RefreshCoordinator | None) -> None:
    """Install the coordinator every ``OAuthSession`` of this process refreshes under.

    ``None`` restores the in-process default. ``interlink.runtime.Runtime``
    installs ``interlink.store.oauth.DatabaseRefreshCoordinator`` when it
    starts, so the refreshes of processes sharing a database exclude each other.
    """
    global _coordinator
    _coordinator = coordinator or LocalRefreshCoordinator()


def refresh_coordinator() -> RefreshCoordinator:
    return _coordinator


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OAuthSession:
    """One connection's OAuth tokens, refreshed before they expire and after a rejection.

    ``credentials`` are the connection's stored credentials, with the token
    fields and the client fields (``client_id``, ``client_secret``,
    ``token_url``) that the connect flow stored.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: Mapping[str, str],
        *,
        connection_id: str,
        scope: str,
        save_credentials: Callable[[Mapping[str, str]], Awaitable[None]],
        request_timeout: float | None = None,
        clock: Callable[[], datetime] = _utcnow,
        coordinator: RefreshCoordinator | None = None,
    ) -> None:
        self.http = http
        self.connection_id = connection_id
        self.scope = scope
        self.save_credentials = save_credentials
        self.request_timeout = request_timeout
        self.clock = clock
        self.coordinator = coordinator
        self._credentials = dict(credentials)
        self._tokens = TokenSet.from_credentials(credentials)

    async def access_token(self, *, renew: bool = False) -> str:
        """Return an access token; refresh it when it is about to expire, or when ``renew`` is set.

        ``renew`` means the source rejected the current token: it is replaced
        by one that another worker obtained meanwhile, or else refreshed.
        """
        if not renew and not self._tokens.expires_within(REFRESH_MARGIN, self.clock()):
            return self._tokens.access_token
        rejected = self._tokens.access_token if renew else None
        coordinator = self.coordinator or refresh_coordinator()
        async with AsyncExitStack() as stack:
            try:
                lease = await stack.enter_async_context(coordinator.lease(self.connection_id))
            except TimeoutError as exc:
                raise SourceTimeout(f"connection {self.connection_id}: {exc}") from exc
            latest = dict(await lease.latest(self._credentials))
            tokens = TokenSet.from_credentials(latest)
            if tokens.access_token != rejected and not tokens.expires_within(REFRESH_MARGIN, self.clock()):
                logger.info("oauth.token.adopted connection_id=%s", self.connection_id)
                self._use(latest)
                return tokens.access_token
            fresh = await self._refresh(latest, tokens)
            updated = {**latest, **fresh.credentials()}
            # Stored before use: a rotated refresh token that is lost cannot be recovered.
            await self.save_credentials(fresh.credentials())
            await lease.refreshed(latest, updated)
            self._use(updated)
            return fresh.access_token
        raise AssertionError("unreachable: the block returns or raises")

    async def _refresh(self, credentials: Mapping[str, str], tokens: TokenSet) -> TokenSet:
        if tokens.refresh_token is None:
            raise AuthenticationError(
                f"connection {self.connection_id}: the access token expired and there is no refresh token; "
                "reconnect it through the connect flow",
                reason_code="token_revoked",
            )
        token_url = credentials.get(TOKEN_URL, "")
        client_id = credentials.get(CLIENT_ID, "")
        if not token_url or not client_id:
            raise AuthenticationError(
                f"connection {self.connection_id} stores no token_url or client_id, so its token cannot be "
                "refreshed; reconnect it through the connect flow",
            )
        client = OAuthClient(client_id, credentials.get(CLIENT_SECRET, ""))
        logger.info("oauth.token.refreshing connection_id=%s", self.connection_id)
        fresh = await refresh_tokens(
            self.http,
            token_url,
            client,
            refresh_token=tokens.refresh_token,
            scope=self.scope,
            now=self.clock(),
            request_timeout=self.request_timeout,
        )
        logger.info(
            "oauth.token.refreshed connection_id=%s rotated=%s",
            self.connection_id,
            fresh.refresh_token != tokens.refresh_token,
        )
        return fresh

    def _use(self, credentials: Mapping[str, str]) -> None:
        self._credentials = dict(credentials)
        self._tokens = TokenSet.from_credentials(credentials)
