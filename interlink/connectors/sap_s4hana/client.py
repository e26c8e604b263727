"""HTTP access to SAP S/4HANA OData v2 services: basic auth, ``sap-client``, paging, CSRF tokens.

Every response is decoded with ``parse_float=Decimal``. Collections are read in
server-driven pages: the client follows each ``__next`` link, which must stay
on the configured host and must move forward; a link seen before fails the
read with ``SourceDataError`` instead of looping. A page that is not valid JSON
is retried like a 5xx answer, because a cut-off body is usually transient.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from interlink.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    SourceDataError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from interlink.connectors.http import RetryPolicy, Sleep, error_for_response, redact_url, send
from interlink.connectors.odata import LiteralValue, entity_path

logger = logging.getLogger(__name__)

ODATA_PATH = "/sap/opu/odata/sap"
# Bounds of one collection read; far beyond any real read, they only stop a runaway loop.
MAX_PAGES_PER_READ = 100_000
MAX_READ_SECONDS = 6 * 3600.0
_QUERY_SAFE = "$'(),:/-_.!~*"


@dataclass(frozen=True)
class SapSettings:
    """Address, user and client of one SAP system, normalized from the connection's credentials."""

    root: str
    username: str
    password: str
    sap_client: str | None

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, str]) -> SapSettings:
        base_url = credentials["base_url"].strip().rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceRejected(
                f"base_url {base_url!r} is not an http(s) URL; give the system's address, "
                "such as https://my-s4.example.com"
            )
        root = base_url if parts.path.endswith(ODATA_PATH) else base_url + ODATA_PATH
        client = (credentials.get("sap_client") or "").strip() or None
        return cls(
            root=root, username=credentials["username"], password=credentials["password"], sap_client=client
        )


class SapClient:
    """Calls one SAP system's OData services for one connection."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: SapSettings,
        *,
        policy: RetryPolicy,
        sleep: Sleep | None = None,
    ) -> None:
        self.http = http
        self.settings = settings
        self.policy = policy
        self.sleep = sleep
        token = base64.b64encode(f"{settings.username}:{settings.password}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self._csrf_tokens: dict[str, str] = {}

    def service_url(self, service: str) -> str:
        return f"{self.settings.root}/{service}"

    async def check(self, service: str) -> None:
        """Read the service document of ``service``: one cheap authenticated call."""
        await self.get_json(f"{self.service_url(service)}/", {})

    async def get_json(self, url: str, params: Mapping[str, str]) -> dict[str, Any]:
        """GET ``url`` and return the decoded JSON object, with one repair attempt on 401."""
        body, _ = await self._get(url, params)
        return body

    async def _get(self, url: str, params: Mapping[str, str]) -> tuple[dict[str, Any], httpx.URL]:
        response = await self._send("GET", url, params=params)
        return _decode(response), response.request.url

    async def get_entity(
        self,
        service: str,
        entity_set: str,
        key: Mapping[str, LiteralValue] | LiteralValue,
        params: Mapping[str, str],
    ) -> dict[str, Any]:
        """Read one entity by key; quotes and slashes in the key are escaped."""
        url = f"{self.service_url(service)}/{entity_path(entity_set, key)}"
        body = await self.get_json(url, params)
        entity = body.get("d")
        if not isinstance(entity, dict):
            raise SourceDataError(f"GET {redact_url(url)} returned no 'd' object")
        return entity

    async def pages(
        self, service: str, entity_set: str, params: Mapping[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the entities of a collection page by page, following ``__next`` links."""
        url = f"{self.service_url(service)}/{entity_set}"
        query: Mapping[str, str] = params
        requested: set[str] = set()
        started = time.monotonic()
        for _ in range(MAX_PAGES_PER_READ):
            body, request_url = await self._get(url, query)
            requested.add(_page_identity(request_url))
            entities, next_link = _collection(body, url)
            yield entities
            if next_link is None:
                return
            url = self._next_url(next_link, requested)
            query = {}
            if time.monotonic() - started > MAX_READ_SECONDS:
                raise SourceTimeout(
                    f"reading {entity_set} took longer than {MAX_READ_SECONDS:.0f} s; stopped"
                )
        raise SourceDataError(f"reading {entity_set} needed more than {MAX_PAGES_PER_READ} pages; stopped")

    def _next_url(self, link: str, requested: set[str]) -> str:
        """Check a ``__next`` link: same host as the system, and no page the read requested before."""
        root = httpx.URL(self.settings.root)
        next_url = root.join(link)
        if next_url.host != root.host:
            raise SourceDataError(
                f"the __next link points to another host ({next_url.host}); "
                "credentials are sent only to the configured system"
            )
        if _page_identity(next_url) in requested:
            raise SourceDataError(
                f"the __next link {redact_url(next_url)} repeats a page already read, so paging cannot "
                "advance; the read stopped instead of looping"
            )
        return str(next_url)

    async def write(
        self, method: str, service: str, path: str, body: Mapping[str, Any] | None
    ) -> httpx.Response:
        """Send a write with a CSRF token, fetching a new token once when SAP rejects the current one."""
        url = f"{self.service_url(service)}/{path}"
        for attempt in (1, 2):
            token = self._csrf_tokens.get(service) or await self._fetch_csrf_token(service)
            try:
                return await self._send(method, url, json_body=body, headers={"x-csrf-token": token})
            except CsrfTokenRejected:
                self._csrf_tokens.pop(service, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable: the loop returns or raises")

    async def _fetch_csrf_token(self, service: str) -> str:
        response = await self._send("GET", f"{self.service_url(service)}/", headers={"x-csrf-token": "Fetch"})
        token = str(response.headers.get("x-csrf-token", ""))
        if not token or token.lower() == "required":
            raise SourceDataError(f"{service} returned no x-csrf-token header to a token fetch")
        self._csrf_tokens[service] = token
        return token

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        query = dict(params or {})
        if self.settings.sap_client and "sap-client" not in httpx.URL(url).params:
            query.setdefault("sap-client", self.settings.sap_client)
        full_url = _with_query(url, query)
        all_headers = {"Authorization": self._authorization, **(headers or {})}
        request = self.http.build_request(method, full_url, headers=all_headers, json=json_body)
        try:
            return await self._send_once(request)
        except AuthenticationError:
            # The one repair basic auth allows: drop SAP's session cookies, which may belong
            # to a session the server ended, and try once more with the credentials alone.
            logger.info("sap.auth.retry_without_session url=%s", redact_url(request.url))
            self.http.cookies.clear()
            self._csrf_tokens.clear()
            request = self.http.build_request(method, full_url, headers=all_headers, json=json_body)
            return await self._send_once(request)

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        if self.sleep is None:
            return await send(self.http, request, policy=self.policy, classify=_classify)
        return await send(self.http, request, policy=self.policy, classify=_classify, sleep=self.sleep)


class CsrfTokenRejected(SourceRejected):
    """SAP responded 403 with ``x-csrf-token: Required`` because the token is missing or expired."""


def _classify(response: httpx.Response) -> ConnectorError | None:
    where = f"{response.request.method} {redact_url(response.request.url)}"
    if response.status_code == 403 and response.headers.get("x-csrf-token", "").lower() == "required":
        return CsrfTokenRejected(f"{where} rejected the CSRF token", status_code=403)
    error = error_for_response(response)
    if isinstance(error, SourceRejected):
        detail = _sap_message(response)
        return SourceRejected(
            f"{where} returned HTTP {response.status_code}: {detail}", status_code=response.status_code
        )
    if error is not None:
        return error
    if response.status_code == 200 and "json" in response.headers.get("content-type", ""):
        try:
            json.loads(response.content)
        except ValueError:
            return SourceUnavailable(f"{where} returned a page that is not valid JSON")
    return None


def _sap_message(response: httpx.Response) -> str:
    """Return the message of SAP's ``{"error": {"message": {"value": ...}}}`` body, or a short excerpt."""
    try:
        body = json.loads(response.content)
        message = body["error"]["message"]
        return str(message.get("value") if isinstance(message, dict) else message)
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or "(empty body)"


def _with_query(url: str, params: Mapping[str, str]) -> httpx.URL:
    """Append ``params`` to the URL's own query, spaces as ``%20``.

    httpx would replace a URL's query when given params, dropping the
    ``$skiptoken`` of a ``__next`` link, and it writes spaces as ``+``, which the
    OData URL conventions do not define.
    """
    if not params:
        return httpx.URL(url)
    encoded = "&".join(
        f"{quote(name, safe='$')}={quote(value, safe=_QUERY_SAFE)}" for name, value in params.items()
    )
    separator = "&" if "?" in url else "?"
    return httpx.URL(f"{url}{separator}{encoded}")


def _page_identity(url: httpx.URL) -> str:
    """Identify a page request by path and sorted query, without ``sap-client``, which the client adds."""
    params = sorted((name, value) for name, value in url.params.multi_items() if name != "sap-client")
    return f"{url.path}?{params}"


def _decode(response: httpx.Response) -> dict[str, Any]:
    where = f"{response.request.method} {redact_url(response.request.url)}"
    try:
        body = json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise SourceDataError(f"{where} returned a body that is not JSON") from exc
    if not isinstance(body, dict):
        raise SourceDataError(f"{where} returned JSON that is not an object")
    return body


def _collection(body: Mapping[str, Any], url: str) -> tuple[list[dict[str, Any]], str | None]:
    envelope = body.get("d")
    results = envelope.get("results") if isinstance(envelope, dict) else None
    if not isinstance(envelope, dict) or not isinstance(results, list):
        raise SourceDataError(
            f"GET {redact_url(url)} returned no {{'d': {{'results': [...]}}}} envelope; "
            "the URL does not name an OData v2 collection"
        )
    next_link = envelope.get("__next")
    if next_link is not None and not isinstance(next_link, str):
        raise SourceDataError(f"GET {redact_url(url)} returned a __next that is not a URL: {next_link!r}")
    return results, next_link
