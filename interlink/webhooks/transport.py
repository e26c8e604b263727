"""The HTTP client webhooks are sent with: checked addresses only, verified TLS, no proxies.

httpcore opens every new connection through a network backend's
``connect_tcp(host, port)``. ``GuardedNetworkBackend`` resolves the host
there, checks every address with the ``UrlGuard``, and connects to a checked
address, so the address that was checked is the address connected to. TLS
still runs against the host name: httpcore passes the URL's host as the
server name (SNI) and the certificate is verified for it, and the ``Host``
header is the URL's. Connections are pooled per origin (scheme, host name,
port), so a kept-alive connection is reused only for the same host name.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import certifi
import httpcore
import httpx

from interlink import __version__
from interlink.webhooks.urls import UrlGuard, WebhookUrlRejected

USER_AGENT = f"Interlink-Webhooks/{__version__}"
DELIVERY_TIMEOUT_SECONDS = 10.0
DEFAULT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30.0)


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
        limits: httpx.Limits = DEFAULT_LIMITS,
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
    limits: httpx.Limits = DEFAULT_LIMITS,
) -> httpx.AsyncClient:
    """Create the client for webhook deliveries: guarded addresses, no redirects, no proxies."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, ssl_context=webhook_ssl_context(ca_bundle), limits=limits),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )
