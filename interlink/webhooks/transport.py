"""The HTTP client webhooks are sent with: checked addresses only, verified TLS, no proxies.

httpcore opens every new connection through a network backend's
``connect_tcp(host, port)``. ``GuardedNetworkBackend`` resolves the host
there, checks every address with the ``UrlGuard``, and connects to a checked
address, so the address that was checked is the address connected to. TLS
still runs against the host name: httpcore passes the URL's host as the
server name (SNI) and the certificate is verified for it, and the ``Host``
header is the URL's. Connections are pooled per origin (scheme, host name,
port), so a kept-alive connection is reused only for the same host name.
``ShardedTransport`` spreads requests over several such pools.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable, Sequence

import certifi
import httpcore
import httpx

from interlink import __version__
from interlink.webhooks.urls import UrlGuard, WebhookUrlRejected

USER_AGENT = f"Interlink-Webhooks/{__version__}"
DELIVERY_TIMEOUT_SECONDS = 10.0
# Requests are spread over several connection pools because httpcore's pool rescans all of its
# connections, checking each idle one for readability, whenever a request starts or ends. With
# 32 requests in flight to a receiver on 127.0.0.1, one pool cost about 3.2 ms of CPU per request
# and eight pools about 1.0 ms (Python 3.11, httpcore 1.0.9, see docs/benchmarks/webhooks.md).
POOLS = 8
POOL_LIMITS = httpx.Limits(max_connections=25, max_keepalive_connections=12, keepalive_expiry=30.0)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses that the guard allowed, trying them in the resolver's order."""

    def __init__(self, guard: UrlGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface names it so
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.allowed_addresses(host, port)
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # allowed_addresses never returns an empty list
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface names it so
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise WebhookUrlRejected("webhooks are never sent over a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool connects through ``GuardedNetworkBackend``."""

    def __init__(
        self,
        guard: UrlGuard,
        *,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits = POOL_LIMITS,
        inner_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # NOTE: AsyncHTTPTransport (httpx 0.28 and 0.29) accepts no network backend, so the pool it
        # built is replaced by one that has ours. ``_pool`` is httpx's private attribute; the
        # delivery tests fail if a new httpx version renames it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard, inner_backend),
        )


class ShardedTransport(httpx.AsyncBaseTransport):
    """Sends each request through the one of several transports that has the fewest requests in flight."""

    def __init__(self, transports: Sequence[httpx.AsyncBaseTransport]) -> None:
        if not transports:
            raise ValueError("ShardedTransport needs at least one transport")
        self._transports = list(transports)
        self._in_flight = [0] * len(self._transports)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._transports)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            response = await self._transports[index].handle_async_request(request)
        except BaseException:
            self._in_flight[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CountedStream(response.stream, self._in_flight, index),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


class _CountedStream(httpx.AsyncByteStream):
    """A response body that ends its request's count in ``ShardedTransport`` when closed."""

    def __init__(self, stream: httpx.AsyncByteStream, counts: list[int], index: int) -> None:
        self._stream = stream
        self._counts = counts
        self._index = index
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._counts[self._index] -= 1
        await self._stream.aclose()


def webhook_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """Return a verifying TLS context trusting certifi's CAs plus those in ``ca_bundle`` (a PEM file)."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"INTERLINK_WEBHOOK_CA_BUNDLE={ca_bundle!r} cannot be loaded ({exc}); "
                "point it at a PEM file of CA certificates"
            ) from exc
    return context


def create_delivery_client(
    guard: UrlGuard,
    *,
    ca_bundle: str | None = None,
    timeout: float = DELIVERY_TIMEOUT_SECONDS,
    pools: int = POOLS,
) -> httpx.AsyncClient:
    """Create the client for webhook deliveries: guarded addresses, no redirects, no proxies."""
    ssl_context = webhook_ssl_context(ca_bundle)
    transports = [GuardedTransport(guard, ssl_context=ssl_context) for _ in range(pools)]
    return httpx.AsyncClient(
        transport=ShardedTransport(transports),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )
