"""HTTP access to NetSuite's REST web services: TBA signing per attempt, retries, paging, SuiteQL.

Every attempt is signed anew, because NetSuite rejects a nonce it has seen, so
retries cannot resend the same request. A 401 gets one repair attempt with a
fresh signature; a second one raises ``AuthenticationError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from interlink.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    RateLimited,
    RetryableError,
    SourceDataError,
    SourceUnavailable,
)
from interlink.connectors.http import RetryPolicy, error_for_response, redact_url, send
from interlink.connectors.netsuite.oauth1 import TokenCredentials, authorization_header

logger = logging.getLogger(__name__)

# One attempt per ``send``: the retry loop here re-signs each attempt.
_SINGLE_ATTEMPT = RetryPolicy(max_attempts=1)
# Collections and SuiteQL stop at 100,000 results without SuiteAnalytics Connect.
RESULT_CAP = 100_000
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Tuning:
    """Knobs of the client; tests shrink the delays."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Records fetched at once; NetSuite's account limit is shared with every other integration.
    concurrency: int = 4
    # Records per page handed to the engine.
    page_size: int = 100
    # Ids per listing page (collection ``limit`` and SuiteQL ``limit``), at most 1000.
    list_limit: int = MAX_LIMIT
    max_pages: int = 10_000
    request_timeout: float | None = None


def base_url_for(account_id: str) -> str:
    """Return the REST base URL of an account: lower case, ``_`` as ``-`` (``123_SB1`` gives ``123-sb1``)."""
    return f"https://{account_id.lower().replace('_', '-')}.suitetalk.api.netsuite.com"


def parse_json(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def classify(response: httpx.Response) -> ConnectorError | None:
    """Classify a response; a 429 is retryable whatever its code, a non-JSON success is retryable too."""
    problem = error_for_response(response)
    if isinstance(problem, RateLimited):
        detail = _error_code(response)
        problem = RateLimited(f"{problem} ({detail})", status_code=429, retry_after=problem.retry_after)
    if problem is not None:
        return problem
    try:
        parse_json(response)
    except ValueError:
        where = f"{response.request.method} {redact_url(response.request.url)}"
        return SourceUnavailable(f"{where} answered a body that is not valid JSON", status_code=200)
    return None


def _error_code(response: httpx.Response) -> str:
    try:
        details = parse_json(response).get("o:errorDetails") or [{}]
        return str(details[0].get("o:errorCode", "no error code"))
    except (ValueError, AttributeError, IndexError):
        return "no error code"


class NetSuiteClient:
    def __init__(self, http: httpx.AsyncClient, credentials: Mapping[str, str], tuning: Tuning) -> None:
        self.http = http
        self.tuning = tuning
        account_id = credentials["account_id"]
        self.base_url = (credentials.get("base_url") or base_url_for(account_id)).rstrip("/")
        self.token = TokenCredentials(
            realm=account_id,
            consumer_key=credentials["consumer_key"],
            consumer_secret=credentials["consumer_secret"],
            token_id=credentials["token_id"],
            token_secret=credentials["token_secret"],
        )

    async def request(
        self, method: str, path_or_url: str, *, params: Mapping[str, str] | None = None, body: Any = None
    ) -> httpx.Response:
        """Send a signed request, re-signing each retry; repair a 401 once with a fresh signature."""
        url = path_or_url if path_or_url.startswith("http") else f"{self.base_url}{path_or_url}"
        policy = self.tuning.retry
        waited = 0.0
        repaired = False
        attempt = 0
        while True:
            attempt += 1
            request = self.http.build_request(
                method, url, params=params, json=body, timeout=self.tuning.request_timeout
            )
            if body is not None:
                request.headers["Prefer"] = "transient"
            request.headers["Authorization"] = authorization_header(self.token, method, str(request.url))
            try:
                return await send(self.http, request, policy=_SINGLE_ATTEMPT, classify=classify)
            except AuthenticationError as exc:
                if repaired:
                    raise AuthenticationError(
                        f"{exc}: NetSuite rejected the token twice; check account_id, the consumer key and "
                        "secret of the integration record, and the token id and secret",
                        status_code=exc.status_code,
                    ) from exc
                repaired = True
                logger.info("netsuite.login.rejected action=sign_again")
            except RetryableError as exc:
                delay = exc.retry_after if exc.retry_after is not None else policy.backoff(attempt)
                if attempt >= policy.max_attempts or waited + delay > policy.max_total_wait:
                    raise
                logger.warning(
                    "http.retry method=%s url=%s attempt=%d delay=%.2f error=%s",
                    method,
                    redact_url(request.url),
                    attempt,
                    delay,
                    type(exc).__name__,
                )
                await asyncio.sleep(delay)
                waited += delay

    async def get_record(self, record_type: str, record_id: str) -> dict[str, Any] | None:
        """GET one record with its sublists, or ``None`` when it no longer exists."""
        try:
            response = await self.request(
                "GET",
                f"/services/rest/record/v1/{record_type}/{record_id}",
                params={"expandSubResources": "true"},
            )
        except ConnectorError as exc:
            if exc.status_code == 404:
                return None
            raise
        record: dict[str, Any] = parse_json(response)
        return record

    async def list_page(
        self, url: str, params: Mapping[str, str] | None
    ) -> tuple[dict[str, Any], datetime | None]:
        response = await self.request("GET", url, params=params)
        return parse_json(response), _answered_at(response)

    async def suiteql(
        self, query: str, *, limit: int = MAX_LIMIT, offset: int = 0
    ) -> tuple[dict[str, Any], datetime | None]:
        response = await self.request(
            "POST",
            "/services/rest/query/v1/suiteql",
            params={"limit": str(limit), "offset": str(offset)},
            body={"q": query},
        )
        return parse_json(response), _answered_at(response)


def next_link(body: Mapping[str, Any], current_url: str, current_offset: int) -> str | None:
    """Return the ``next`` link of a collection page; raise ``SourceDataError`` when it does not advance."""
    if not body.get("hasMore"):
        return None
    links = [str(item["href"]) for item in body.get("links", []) if item.get("rel") == "next"]
    link = links[0] if links else None
    if link is None:
        raise SourceDataError(f"GET {redact_url(current_url)} returned hasMore without a next link")
    offset = int(httpx.URL(link).params.get("offset", "0"))
    if str(httpx.URL(link)) == str(httpx.URL(current_url)) or offset <= current_offset:
        raise SourceDataError(
            f"GET {redact_url(current_url)} returned a next link that does not advance "
            f"({redact_url(link)}); the source's paging is broken, so the read stopped"
        )
    return link


def _answered_at(response: httpx.Response) -> datetime | None:
    try:
        return parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return None
