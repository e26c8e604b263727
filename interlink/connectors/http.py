"""The HTTP layer every connector shares: timeouts, retries with backoff, typed errors.

Retryable failures (timeouts, connection errors, 5xx, 429) are retried with
exponential backoff and jitter, honouring ``Retry-After`` given in seconds or
as an HTTP date, within a bound on attempts and on the total wait. Anything
else becomes a final error at once. URLs are logged with credentials and
sensitive query parameters redacted.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from interlink.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    PermissionDenied,
    RateLimited,
    RetryableError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The event of a request started by ``request_ahead``. ``_attempt`` has httpcore's trace set it
# once the request's body is sent.
_request_sent: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar(
    "interlink_request_sent", default=None
)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "Interlink/0.1 (+https://github.com/interlink)"

_SENSITIVE_PARAMETERS = (
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "signature",
    "sig",
    "code",
    "auth",
    "session",
    "credential",
)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retryable failure."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    # The sum of all waits of one request; a Retry-After beyond it fails at once.
    max_total_wait: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Return the delay before retry ``attempt`` (1-based): exponential with full jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def create_client(
    *,
    base_url: str = "",
    headers: dict[str, str] | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    auth: httpx.Auth | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """Create the ``httpx.AsyncClient`` a connector uses."""
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    all_headers.update(headers or {})
    return httpx.AsyncClient(
        base_url=base_url,
        headers=all_headers,
        timeout=timeout,
        auth=auth,
        transport=transport,
        follow_redirects=False,
    )


def redact_url(url: str | httpx.URL) -> str:
    """Return ``url`` with its user info and sensitive query values replaced by ``***``."""
    parts = urlsplit(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [
            (name, "***" if _is_sensitive(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*$'(),:/ ",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE_PARAMETERS)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header given as seconds or as an HTTP date into seconds."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (moment - current).total_seconds())


def error_for_response(response: httpx.Response) -> ConnectorError | None:
    """Classify a response: ``None`` for success, else the typed error it stands for."""
    status = response.status_code
    if status < 400:
        return None
    where = f"{response.request.method} {redact_url(response.request.url)}"
    if status == 401:
        return AuthenticationError(f"{where} returned 401 Unauthorized", status_code=status)
    if status == 403:
        return PermissionDenied(f"{where} returned 403 Forbidden", status_code=status)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(
            f"{where} returned 429 Too Many Requests", status_code=status, retry_after=retry_after
        )
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return SourceUnavailable(f"{where} returned {status}", status_code=status, retry_after=retry_after)
    return SourceRejected(f"{where} returned {status}", status_code=status)


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    policy: RetryPolicy = RetryPolicy(),
    classify: Callable[[httpx.Response], ConnectorError | None] = error_for_response,
    sleep: Sleep = asyncio.sleep,
) -> httpx.Response:
    """Send ``request``, retrying retryable failures, and return the successful response.

    Raises the ``ConnectorError`` for the last failure when retries run out or
    the failure is final.
    """
    waited = 0.0
    for attempt in range(1, policy.max_attempts + 1):
        error = await _attempt(client, request, classify)
        if isinstance(error, httpx.Response):
            return error
        if not isinstance(error, RetryableError) or attempt == policy.max_attempts:
            raise error
        delay = error.retry_after if error.retry_after is not None else policy.backoff(attempt)
        if waited + delay > policy.max_total_wait:
            raise error
        logger.warning(
            "http.retry method=%s url=%s attempt=%d delay=%.2f error=%s",
            request.method,
            redact_url(request.url),
            attempt,
            delay,
            type(error).__name__,
        )
        await sleep(delay)
        waited += delay
    raise AssertionError("unreachable: the loop returns or raises")


async def request_ahead(request: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Start ``request`` in a task and return once it has been sent, or has ended.

    A paged reader asks for page n + 1 this way before it maps page n, so the
    source prepares the next page while Interlink maps and stores the
    current one. A new task sends nothing until the event loop is free
    again, which would be after the caller's work. So the request, sent by
    ``send``, reports the moment its body has gone out through httpcore's
    ``trace`` extension. Pair it with ``abandon`` for a request that is no
    longer needed when the reader stops.
    """
    sent = asyncio.Event()
    context = contextvars.copy_context()
    context.run(_request_sent.set, sent)
    task = asyncio.create_task(request, context=context)
    signal = asyncio.ensure_future(sent.wait())
    try:
        await asyncio.wait((task, signal), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        signal.cancel()
    return task


async def abandon(task: asyncio.Task[Any]) -> None:
    """Cancel a request started by ``request_ahead``, or retrieve the error of a failed one."""
    if not task.done():
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    elif not task.cancelled():
        # Retrieving the outcome keeps asyncio from logging the error of a page no longer wanted.
        task.exception()


async def _attempt(
    client: httpx.AsyncClient,
    request: httpx.Request,
    classify: Callable[[httpx.Response], ConnectorError | None],
) -> httpx.Response | ConnectorError:
    where = f"{request.method} {redact_url(request.url)}"
    sent = _request_sent.get()
    if sent is not None:
        request.extensions["trace"] = _reporting_sent(sent)
    started = time.monotonic()
    try:
        response = await client.send(request)
        await response.aread()
    except httpx.TimeoutException as exc:
        return _chain(SourceTimeout(f"{where} timed out"), exc)
    except httpx.TransportError as exc:
        return _chain(SourceUnavailable(f"{where} failed: {type(exc).__name__}"), exc)
    logger.debug(
        "http.response method=%s url=%s status=%d elapsed_ms=%.1f",
        request.method,
        redact_url(request.url),
        response.status_code,
        (time.monotonic() - started) * 1000,
    )
    # httpx binds a read response's stream back to the response, a reference cycle that keeps
    # the body alive until a garbage collection. The body is read, so a plain byte stream
    # can take its place, and the response is freed as soon as its caller drops it.
    response.stream = httpx.ByteStream(response.content)
    error = classify(response)
    return response if error is None else error


def _reporting_sent(sent: asyncio.Event) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """Return an httpcore trace callback that sets ``sent`` once the request body has gone out."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        # httpcore names the event "http11.send_request_body.complete", or "http2...." for HTTP/2.
        if event.endswith(".send_request_body.complete"):
            sent.set()

    return trace


def _chain(error: ConnectorError, cause: BaseException) -> ConnectorError:
    error.__cause__ = cause
    return error
