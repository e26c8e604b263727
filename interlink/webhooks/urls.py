"""URL checks for webhook endpoints: HTTPS only, and public addresses only.

An endpoint URL is checked when it is saved and again on every new
connection at delivery time, because its host name may resolve elsewhere
later. The check resolves the host, rejects the URL when any of the
addresses is forbidden, and the delivery transport then connects only to the
addresses it checked (see ``transport.py``), so DNS cannot change between
the check and the connection.

Forbidden unless ``INTERLINK_WEBHOOK_ALLOW_PRIVATE`` is set: loopback,
private, link-local, shared (carrier-grade NAT) and other non-global
addresses, including IPv4 addresses embedded in IPv6 ones. Always
forbidden: cloud metadata addresses, the unspecified address, multicast and
broadcast, and host names written as ambiguous numbers (``2130706433``,
``0x7f.1``), which resolvers read as IPv4 addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from interlink.errors import InterlinkError

if TYPE_CHECKING:
    from interlink.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0

# Instance metadata services of the large clouds. All of them are non-global
# addresses too; they are listed so that allowing private addresses never
# allows these, and so the error can name them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(value)
    for value in (
        "169.254.169.254",  # AWS, Google Cloud, Azure, Oracle Cloud, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
_NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


class WebhookUrlRejected(InterlinkError):
    """An endpoint URL is malformed, not HTTPS, does not resolve, or resolves to a forbidden address."""


@dataclass(frozen=True)
class ParsedUrl:
    url: httpx.URL
    # The host as it goes on the wire: ASCII (IDNA), without IPv6 brackets.
    host: str
    port: int


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` with the system resolver and return its addresses in the resolver's order."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise WebhookUrlRejected(
            f"resolving host {host!r} timed out after {RESOLVE_TIMEOUT_SECONDS:g} s"
        ) from exc
    except OSError as exc:
        raise WebhookUrlRejected(f"host {host!r} does not resolve ({exc}); check the host name") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Return why Interlink must not connect to ``address``, or ``None`` when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            problem = address_problem(embedded, allow_private=allow_private)
            return f"{problem} (embedded as {embedded})" if problem else None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address == _BROADCAST:
        return "the broadcast address"
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-public (reserved or shared) address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address that an IPv4-mapped, 6to4, Teredo or NAT64 address reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


@dataclass(frozen=True)
class UrlGuard:
    """The URL policy for webhook endpoints, with the resolver it checks host names through."""

    allow_http: bool = False
    allow_private: bool = False
    resolver: Resolver = field(default=resolve_host, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlGuard:
        return cls(allow_http=settings.webhook_allow_http, allow_private=settings.webhook_allow_private)

    def parse(self, url: str) -> ParsedUrl:
        """Check the URL's form and scheme without resolving it; raise ``WebhookUrlRejected``."""
        if len(url) > MAX_URL_LENGTH:
            raise WebhookUrlRejected(
                f"the URL is {len(url)} characters long; the maximum is {MAX_URL_LENGTH}"
            )
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise WebhookUrlRejected(f"{url!r} is not a valid URL: {exc}") from exc
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parsed.scheme not in allowed:
            hint = "" if self.allow_http else " (INTERLINK_WEBHOOK_ALLOW_HTTP allows http:// for tests)"
            raise WebhookUrlRejected(
                f"the URL must start with https://, not {parsed.scheme or 'nothing'}://{hint}"
            )
        host = parsed.raw_host.decode("ascii")
        if not host:
            raise WebhookUrlRejected(f"the URL {url!r} has no host")
        if parsed.userinfo:
            raise WebhookUrlRejected(
                "the URL must not contain a user name or password; verify signatures instead"
            )
        _reject_numeric_host(host)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return ParsedUrl(url=parsed, host=host, port=port)

    async def check(self, url: str) -> str:
        """Check the URL's form, resolve its host and check every address; return the URL.

        Raises ``WebhookUrlRejected`` naming the problem and the fix.
        """
        parsed = self.parse(url)
        await self.allowed_addresses(parsed.host, parsed.port)
        return str(parsed.url)

    async def allowed_addresses(self, host: str, port: int) -> list[IPAddress]:
        """Return the addresses of ``host`` after checking all of them; raise if any is forbidden.

        One forbidden address rejects the host: otherwise a name resolving to
        a public and a private address would reach the private one whenever
        the public one fails.
        """
        literal = _ip_literal(host)
        addresses = [literal] if literal is not None else await self.resolver(host, port)
        if not addresses:
            raise WebhookUrlRejected(f"host {host!r} resolves to no address; check the host name")
        for address in addresses:
            problem = address_problem(address, allow_private=self.allow_private)
            if problem is not None:
                where = f"{host} is" if literal is not None else f"{host} resolves to {address},"
                only_private = address_problem(address, allow_private=True) is None
                hint = "; INTERLINK_WEBHOOK_ALLOW_PRIVATE allows private addresses" if only_private else ""
                raise WebhookUrlRejected(f"{where} {problem}; use a public HTTPS endpoint{hint}")
        return addresses


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _reject_numeric_host(host: str) -> None:
    """Reject host names whose last label is a number, which resolvers may read as an IPv4 address."""
    if _ip_literal(host) is not None:
        return
    last_label = host.rstrip(".").rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.fullmatch(last_label):
        raise WebhookUrlRejected(
            f"host {host!r} is a number, not a host name; write an IP address as four decimal "
            "numbers (a.b.c.d) or use a host name"
        )
