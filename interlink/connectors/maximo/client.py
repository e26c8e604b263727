"""HTTP access to Maximo's REST API (OSLC JSON): API key, lean JSON, page links.

Every request sets ``lean=1`` and sends the API key in the ``apikey``
header, which IBM recommends over the query parameter. Responses are decoded
with ``parse_float=Decimal``, because Maximo writes decimal attributes as JSON
numbers. Collections are read by following ``responseInfo.nextPage.href``,
which must stay on the configured host and must not repeat a page already read.
"""

from __future__ import annotations

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
    ConnectorError,
    SourceDataError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from interlink.connectors.http import RetryPolicy, Sleep, error_for_response, redact_url, send

logger = logging.getLogger(__name__)

# Bounds of one collection read; far beyond any real read, they only stop a runaway loop.
MAX_PAGES_PER_READ = 100_000
MAX_READ_SECONDS = 6 * 3600.0
_QUERY_SAFE = "-_.!~*'(),"


@dataclass(frozen=True)
class MaximoSettings:
    """Address and API key of one Maximo system, normalized from the connection's credentials."""

    root: str
    api_key: str

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, str]) -> MaximoSettings:
        base_url = credentials["base_url"].strip().rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceRejected(
                f"base_url {base_url!r} is not an http(s) URL; give the Maximo address, "
                "such as https://maximo.example.com"
            )
        path = parts.path
        if path.endswith(("/oslc", "/api")):
            root = base_url
        elif path.endswith("/maximo"):
            root = base_url + "/oslc"
        else:
            root = base_url + "/maximo/oslc"
        return cls(root=root, api_key=credentials["api_key"])


class MaximoClient:
    """Calls one Maximo system's REST API for one connection."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: MaximoSettings,
        *,
        policy: RetryPolicy,
        sleep: Sleep | None = None,
    ) -> None:
        self.http = http
        self.settings = settings
        self.policy = policy
        self.sleep = sleep

    async def whoami(self) -> dict[str, Any]:
        """Return the API key's user: one cheap authenticated call."""
        body, _ = await self._get(f"{self.settings.root}/whoami", {})
        return body

    async def pages(self, structure: str, params: Mapping[str, str]) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the members of an object structure's collection page by page."""
        url = f"{self.settings.root}/os/{structure}"
        query: Mapping[str, str] = {"lean": "1", **params}
        requested: set[str] = set()
        started = time.monotonic()
        for _ in range(MAX_PAGES_PER_READ):
            body, request_url = await self._get(url, query)
            requested.add(_page_identity(request_url))
            members, next_link = _collection(body, request_url)
            yield members
            if next_link is None:
                return
            url, query = self._next_url(next_link, requested), {}
            if time.monotonic() - started > MAX_READ_SECONDS:
                raise SourceTimeout(f"reading {structure} took longer than {MAX_READ_SECONDS:.0f} s; stopped")
        raise SourceDataError(f"reading {structure} needed more than {MAX_PAGES_PER_READ} pages; stopped")

    def _next_url(self, link: str, requested: set[str]) -> str:
        root = httpx.URL(self.settings.root)
        next_url = root.join(link)
        if next_url.host != root.host:
            raise SourceDataError(
                f"the nextPage link points to another host ({next_url.host}); "
                "the API key is sent only to the configured system"
            )
        if _page_identity(next_url) in requested:
            raise SourceDataError(
                f"the nextPage link {redact_url(next_url)} repeats a page already read, so paging cannot "
                "advance; the read stopped instead of looping"
            )
        return str(next_url)

    async def _get(self, url: str, params: Mapping[str, str]) -> tuple[dict[str, Any], httpx.URL]:
        # An API key cannot be renewed by the connector, so a 401 is final at once.
        request = self.http.build_request(
            "GET", _with_query(url, params), headers={"apikey": self.settings.api_key}
        )
        if self.sleep is None:
            response = await send(self.http, request, policy=self.policy, classify=_classify)
        else:
            response = await send(
                self.http, request, policy=self.policy, classify=_classify, sleep=self.sleep
            )
        return _decode(response), response.request.url


def _with_query(url: str, params: Mapping[str, str]) -> httpx.URL:
    """Append ``params`` to the URL's own query, every reserved character percent-encoded.

    httpx would replace the query of a ``nextPage`` link when given params, and
    would write spaces as ``+``.
    """
    if not params:
        return httpx.URL(url)
    encoded = "&".join(
        f"{quote(name, safe='.')}={quote(value, safe=_QUERY_SAFE)}" for name, value in params.items()
    )
    return httpx.URL(f"{url}{'&' if '?' in url else '?'}{encoded}")


def _page_identity(url: httpx.URL) -> str:
    """Identify a page request by path and sorted query, without the ``apikey`` parameter."""
    params = sorted((name, value) for name, value in url.params.multi_items() if name != "apikey")
    return f"{url.path}?{params}"


def _classify(response: httpx.Response) -> ConnectorError | None:
    where = f"{response.request.method} {redact_url(response.request.url)}"
    error = error_for_response(response)
    if isinstance(error, SourceRejected):
        return SourceRejected(
            f"{where} returned HTTP {response.status_code}: {_maximo_message(response)}",
            status_code=response.status_code,
        )
    if error is not None:
        return error
    try:
        json.loads(response.content)
    except ValueError:
        return SourceUnavailable(f"{where} returned a page that is not valid JSON")
    return None


def _maximo_message(response: httpx.Response) -> str:
    """Return the message of Maximo's ``{"Error": {"message": ...}}`` body, or a short excerpt."""
    try:
        return str(json.loads(response.content)["Error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or "(empty body)"


def _decode(response: httpx.Response) -> dict[str, Any]:
    where = f"{response.request.method} {redact_url(response.request.url)}"
    try:
        body = json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise SourceDataError(f"{where} returned a body that is not JSON") from exc
    if not isinstance(body, dict):
        raise SourceDataError(f"{where} returned JSON that is not an object")
    return body


def _collection(body: Mapping[str, Any], url: httpx.URL) -> tuple[list[dict[str, Any]], str | None]:
    members = body.get("member")
    if not isinstance(members, list):
        raise SourceDataError(
            f"GET {redact_url(url)} returned no 'member' array; "
            "the request needs lean=1 and the URL of an object structure"
        )
    info = body.get("responseInfo") or {}
    next_page = info.get("nextPage") if isinstance(info, dict) else None
    if next_page is None:
        return members, None
    link = next_page.get("href") if isinstance(next_page, dict) else None
    if not isinstance(link, str):
        raise SourceDataError(f"GET {redact_url(url)} returned a nextPage without an href: {next_page!r}")
    return members, link
