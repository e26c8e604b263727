"""HTTP access to the Business Central API v2.0: bearer tokens, retries and OData paging.

With the ``client_credentials`` scheme a token comes from the Microsoft
identity platform's client credentials grant and is renewed shortly before it
expires. With the ``oauth`` scheme the tokens come from the authorization
code grant of the connect flow and an ``OAuthSession`` refreshes them. A 401
from the API gets one repair attempt (a new token); a second 401, or
``invalid_client`` / ``invalid_grant`` from the token endpoint, raises
``AuthenticationError``.
Pages follow ``@odata.nextLink`` until there is none; a next link that
repeats an earlier one raises ``SourceDataError``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from interlink.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    SourceDataError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from interlink.connectors.http import (
    RetryPolicy,
    abandon,
    error_for_response,
    redact_url,
    request_ahead,
    send,
)
from interlink.connectors.oauth import OAuthSession

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.businesscentral.dynamics.com"
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
SCOPE = "https://api.businesscentral.dynamics.com/.default"
# Delegated permission of the Business Central API, plus offline_access for a refresh token.
OAUTH_SCOPE = "https://api.businesscentral.dynamics.com/Financials.ReadWrite.All offline_access"
DEFAULT_AUTHORIZE_URL = "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/authorize"
# A token is renewed this long before the expiry the identity platform announced.
TOKEN_RENEWAL_MARGIN = 300.0
# Identity platform errors that new credentials, not a retry, can fix.
_CREDENTIAL_ERRORS = {
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "invalid_request",
    "invalid_scope",
}


@dataclass(frozen=True)
class Tuning:
    """Knobs of the client; tests shrink the delays."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Sent as ``Prefer: odata.maxpagesize``; Business Central online caps pages at 20,000.
    page_size: int = 5000
    max_pages: int = 100_000
    # Wall-clock bound on one paged read, in seconds.
    read_deadline: float = 6 * 3600.0
    request_timeout: float | None = None
    # How often an incremental read of purchase orders also sweeps every line (see lines.py).
    line_sweep_interval: timedelta = timedelta(hours=1)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class ODataPage:
    """One page of an OData collection, with the source's clock when it answered."""

    records: list[dict[str, Any]]
    next_link: str | None
    url: str
    answered_at: datetime | None


def parse_json(response: httpx.Response) -> Any:
    """Parse a body with every JSON number that has a fraction as ``Decimal``."""
    return json.loads(response.content, parse_float=Decimal)


def classify(response: httpx.Response) -> ConnectorError | None:
    """Classify like ``error_for_response``, and treat a success whose body is not JSON as retryable."""
    return classify_and_parse(response)[0]


def classify_and_parse(response: httpx.Response) -> tuple[ConnectorError | None, Any]:
    """Classify like ``classify`` and return the parsed body of a success too, or ``None`` for a 204."""
    problem = error_for_response(response)
    if problem is not None or response.status_code == 204:
        return problem, None
    try:
        return None, parse_json(response)
    except ValueError:
        where = f"{response.request.method} {redact_url(response.request.url)}"
        return SourceUnavailable(f"{where} answered a body that is not valid JSON", status_code=200), None


def answered_at(response: httpx.Response) -> datetime | None:
    try:
        return parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return None


class BusinessCentralClient:
    """One connection's API access: token, company, requests and paging."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: Mapping[str, str],
        *,
        tuning: Tuning,
        save_credentials: Callable[[Mapping[str, str]], Awaitable[None]],
        monotonic: Callable[[], float] = time.monotonic,
        oauth: OAuthSession | None = None,
    ) -> None:
        self.http = http
        self.tuning = tuning
        self.save_credentials = save_credentials
        self.monotonic = monotonic
        # Set for the ``oauth`` scheme, whose tokens come from the connect flow.
        self.oauth = oauth
        self.tenant_id = credentials["tenant_id"]
        self.client_id = credentials.get("client_id", "")
        self.client_secret = credentials.get("client_secret", "")
        self.company_id = credentials.get("company_id") or None
        base = (credentials.get("api_base_url") or DEFAULT_API_BASE_URL).rstrip("/")
        environment = quote(credentials["environment"], safe="")
        self.api_root = f"{base}/v2.0/{quote(self.tenant_id, safe='')}/{environment}/api/v2.0"
        self.token_url = credentials.get("token_url") or DEFAULT_LOGIN_URL.format(
            tenant_id=quote(self.tenant_id, safe="")
        )
        self._token: str | None = None
        self._token_expires = 0.0

    async def access_token(self, *, renew: bool = False) -> str:
        """Return a bearer token, fetching a new one when asked or when the current one is about to expire."""
        if self.oauth is not None:
            return await self.oauth.access_token(renew=renew)
        if not renew and self._token is not None and self.monotonic() < self._token_expires:
            return self._token
        request = self.http.build_request(
            "POST",
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "scope": SCOPE,
            },
            timeout=self.tuning.request_timeout,
        )
        response = await send(self.http, request, policy=self.tuning.retry, classify=_classify_token)
        body = parse_json(response)
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 3599))
        self._token_expires = self.monotonic() + max(0.0, lifetime - TOKEN_RENEWAL_MARGIN)
        logger.info("dynamics_bc.token.issued tenant=%s expires_in=%d", self.tenant_id, int(lifetime))
        return self._token

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        """GET ``url`` with a bearer token, renewing the token once after a 401."""
        response, _ = await self.get_json(url, params)
        return response

    async def get_json(self, url: str, params: Mapping[str, str] | None = None) -> tuple[httpx.Response, Any]:
        """GET ``url`` like ``get`` and return the response with its parsed JSON body.

        The body is parsed once, by the check that retries a body that is not JSON.
        """
        parsed: list[Any] = [None]

        def keep_body(response: httpx.Response) -> ConnectorError | None:
            # send() returns the response of the last call that found no problem, so
            # parsed[0] ends up as that response's body.
            problem, parsed[0] = classify_and_parse(response)
            return problem

        for renew in (False, True):
            token = await self.access_token(renew=renew)
            request = self.http.build_request(
                "GET",
                url,
                params=params,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Prefer": f"odata.maxpagesize={self.tuning.page_size}",
                },
                timeout=self.tuning.request_timeout,
            )
            try:
                response = await send(self.http, request, policy=self.tuning.retry, classify=keep_body)
                return response, parsed[0]
            except AuthenticationError as exc:
                if renew:
                    hint = (
                        "check that the signed-in user still has access to the environment"
                        if self.oauth is not None
                        else "check that the app registration has the Business Central API permission and "
                        "is granted in the environment"
                    )
                    raise AuthenticationError(
                        f"{exc}, also with a newly issued token; {hint}", status_code=exc.status_code
                    ) from exc
                logger.info("dynamics_bc.token.rejected tenant=%s action=renew", self.tenant_id)
        raise AssertionError("unreachable: the loop returns or raises")

    async def company_url(self) -> str:
        """Return the URL of the company, discovering its id when the credentials name none."""
        if self.company_id is None:
            _, body = await self.get_json(f"{self.api_root}/companies")
            companies = body.get("value", [])
            if len(companies) != 1:
                names = ", ".join(f"{c.get('name')} ({c.get('id')})" for c in companies) or "none"
                raise SourceRejected(
                    f"the environment has {len(companies)} companies ({names}); set company_id to one of them"
                )
            self.company_id = str(companies[0]["id"])
            await self.save_credentials({"company_id": self.company_id})
        try:
            company = uuid.UUID(self.company_id)
        except ValueError as exc:
            raise SourceRejected(
                f"company_id {self.company_id!r} is not a GUID; copy it from /companies"
            ) from exc
        return f"{self.api_root}/companies({company})"

    async def pages(self, url: str, params: Mapping[str, str] | None = None) -> AsyncIterator[ODataPage]:
        """Yield the pages of a collection, following ``@odata.nextLink`` within the tuning's bounds.

        The request for the next page is sent before the current page is
        yielded, so the source prepares it while the caller stores the
        current one. At most one request is in flight, and closing the
        iterator cancels it.
        """
        deadline = self.monotonic() + self.tuning.read_deadline
        seen: set[str] = set()
        pending = await request_ahead(self.get_json(url, params))
        try:
            for number in range(1, self.tuning.max_pages + 1):
                if self.monotonic() > deadline:
                    limit = self.tuning.read_deadline
                    raise SourceTimeout(f"reading {redact_url(url)} took longer than {limit:.0f} s; stopped")
                response, body = await pending
                page_url = str(response.request.url)
                next_link = _next_link(page_url, body, seen)
                seen.add(page_url)
                if next_link is not None and number < self.tuning.max_pages:
                    pending = await request_ahead(self.get_json(next_link, None))
                yield ODataPage(list(body.get("value", [])), next_link, page_url, answered_at(response))
                if next_link is None:
                    return
            raise SourceDataError(f"reading {redact_url(url)} passed {self.tuning.max_pages} pages; stopped")
        finally:
            await abandon(pending)


def _next_link(page_url: str, body: Mapping[str, Any], seen: set[str]) -> str | None:
    """Return the page's ``@odata.nextLink``; raise ``SourceDataError`` when it repeats an earlier page."""
    next_link = body.get("@odata.nextLink")
    if next_link is None:
        return None
    next_link = str(httpx.URL(next_link))
    if next_link == page_url or next_link in seen:
        raise SourceDataError(
            f"GET {redact_url(page_url)} answered an @odata.nextLink that repeats an earlier page "
            f"({redact_url(next_link)}); the source's paging does not advance, so the read stopped"
        )
    return next_link


def _classify_token(response: httpx.Response) -> ConnectorError | None:
    if response.status_code in (400, 401):
        try:
            code = str(parse_json(response).get("error", ""))
        except (ValueError, AttributeError):
            code = ""
        if code in _CREDENTIAL_ERRORS or response.status_code == 401:
            return AuthenticationError(
                f"the token endpoint {redact_url(response.request.url)} rejected the client credentials "
                f"({code or response.status_code}); check tenant_id, client_id and client_secret",
                status_code=response.status_code,
            )
    return classify(response)
