"""The shared HTTP layer: error classification, retries, Retry-After and redaction."""

from __future__ import annotations

import asyncio
import gc
import weakref
from datetime import UTC, datetime

import httpx
import pytest

from interlink.connectors.errors import (
    AuthenticationError,
    PermissionDenied,
    RateLimited,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from interlink.connectors.http import (
    RetryPolicy,
    abandon,
    create_client,
    parse_retry_after,
    redact_url,
    request_ahead,
    send,
)

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02, max_total_wait=10)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def scripted(*responses: httpx.Response | Exception) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return create_client(transport=httpx.MockTransport(handler)), seen


async def test_retry_after_seconds_is_honoured() -> None:
    client, seen = scripted(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={}))
    sleeps = Sleeps()
    response = await send(
        client, client.build_request("GET", "https://erp.test/x"), policy=FAST, sleep=sleeps
    )
    assert response.status_code == 200
    assert len(seen) == 2
    assert sleeps.delays == [3.0]


async def test_server_errors_are_retried_then_raised() -> None:
    client, seen = scripted(*(httpx.Response(503) for _ in range(4)))
    with pytest.raises(SourceUnavailable):
        await send(client, client.build_request("GET", "https://erp.test/x"), policy=FAST, sleep=Sleeps())
    assert len(seen) == 4


async def test_timeouts_are_retried() -> None:
    client, seen = scripted(httpx.ReadTimeout("slow"), httpx.Response(200))
    response = await send(
        client, client.build_request("GET", "https://erp.test/x"), policy=FAST, sleep=Sleeps()
    )
    assert response.status_code == 200
    assert len(seen) == 2


async def test_timeouts_exhausted_raise_timeout_error() -> None:
    client, _ = scripted(*(httpx.ConnectTimeout("slow") for _ in range(4)))
    with pytest.raises(SourceTimeout):
        await send(client, client.build_request("GET", "https://erp.test/x"), policy=FAST, sleep=Sleeps())


async def test_wait_beyond_budget_fails_at_once() -> None:
    client, seen = scripted(httpx.Response(429, headers={"Retry-After": "3600"}))
    sleeps = Sleeps()
    with pytest.raises(RateLimited) as raised:
        await send(client, client.build_request("GET", "https://erp.test/x"), policy=FAST, sleep=sleeps)
    assert raised.value.retry_after == 3600
    assert sleeps.delays == []
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (403, PermissionDenied), (404, SourceRejected), (422, SourceRejected)],
)
async def test_final_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    client, seen = scripted(httpx.Response(status))
    with pytest.raises(error):
        await send(client, client.build_request("GET", "https://erp.test/x"), policy=FAST, sleep=Sleeps())
    assert len(seen) == 1


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_redact_url_hides_secrets() -> None:
    redacted = redact_url("https://user:pw@erp.test/path?api_key=abc&page=2&access_token=xyz")
    assert "pw" not in redacted
    assert "abc" not in redacted
    assert "xyz" not in redacted
    assert "page=2" in redacted
    assert redacted.startswith("https://***@erp.test/path")


async def test_error_messages_carry_no_secrets() -> None:
    client, _ = scripted(httpx.Response(401))
    request = client.build_request("GET", "https://erp.test/x?token=s3cret-value")
    with pytest.raises(AuthenticationError) as raised:
        await send(client, request, policy=FAST, sleep=Sleeps())
    assert "s3cret-value" not in str(raised.value)


async def test_read_response_freed_without_gc() -> None:
    client, _ = scripted(httpx.Response(200, json={"data": [1, 2, 3]}))
    async with client:
        gc.disable()
        try:
            response = await send(client, client.build_request("GET", "https://erp.example/orders"))
            assert response.json() == {"data": [1, 2, 3]}
            freed = weakref.ref(response)
            del response
            assert freed() is None  # no reference cycle keeps the body until a collection
        finally:
            gc.enable()


async def test_request_ahead_returns_once_sent() -> None:
    received = asyncio.Event()
    answer = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.set()
        await answer.wait()  # the page is still being prepared
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with create_client() as client:
            request = client.build_request("GET", f"http://127.0.0.1:{port}/orders")
            pending = await request_ahead(send(client, request))
            assert received.is_set()  # the source has the request before the caller maps its page
            assert not pending.done()
            await abandon(pending)
            assert pending.cancelled()
    finally:
        answer.set()
        server.close()
        await server.wait_closed()


async def test_request_ahead_collects_failure() -> None:
    async def failed_page() -> None:
        raise SourceUnavailable("GET https://erp.example/orders failed: ConnectError")

    failed = await request_ahead(failed_page())
    assert failed.done()
    await abandon(failed)  # collects the error instead of raising it
    assert isinstance(failed.exception(), SourceUnavailable)
