"""Rejected endpoint URLs, checked without connecting to any of them.

Names resolve through ``LocalResolver`` (no DNS), except ``localhost``,
which the system resolves from its hosts file. The delivery backend is
tested with a recording inner backend, so no forbidden address is ever
dialled.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import httpcore
import pytest

from interlink.webhooks.transport import GuardedNetworkBackend
from interlink.webhooks.urls import IPAddress, UrlGuard, WebhookUrlRejected
from tests.webhooks.support import LocalResolver


def _ips(*values: str) -> list[IPAddress]:
    return [ipaddress.ip_address(value) for value in values]


NAMES = {
    "public.test": _ips("93.184.216.34"),
    "public6.test": _ips("2606:4700:4700::1111"),
    "metadata.test": _ips("169.254.169.254"),
    "internal.test": _ips("10.1.2.3"),
    "mixed.test": _ips("93.184.216.34", "10.0.0.8"),
    "imds6.test": _ips("fd00:ec2::254"),
    "nowhere.test": [],
}


def strict_guard(**options: bool) -> UrlGuard:
    return UrlGuard(resolver=LocalResolver(names=dict(NAMES)), **options)


REJECTED = [
    ("http://93.184.216.34/hook", "must start with https://"),
    ("ftp://93.184.216.34/hook", "must start with https://"),
    ("not a url", "must start with https://"),
    ("https:///hook", "has no host"),
    ("https://user:secret@93.184.216.34/hook", "user name or password"),
    ("https://" + "a" * 2100 + ".test/", "maximum is 2048"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://127.0.0.1:8443/hook", "loopback"),
    ("https://127.1/hook", "is a number"),
    ("https://2130706433/hook", "is a number"),
    ("https://0x7f.0.0.1/hook", "is a number"),
    ("https://017700000001/hook", "is a number"),
    ("https://10.0.0.1/hook", "private"),
    ("https://172.16.5.4/hook", "private"),
    ("https://192.168.1.1/hook", "private"),
    ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("https://169.254.170.2/v2/credentials", "cloud metadata"),
    ("https://100.100.100.200/latest/meta-data/", "cloud metadata"),
    ("https://169.254.10.10/hook", "link-local"),
    ("https://100.64.0.1/hook", "non-public"),
    ("https://192.0.2.10/hook", "private"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://255.255.255.255/hook", "broadcast"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::]/hook", "unspecified"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[fc00::5]/hook", "private"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://[::ffff:169.254.169.254]/hook", "cloud metadata"),
    ("https://[2002:7f00:1::]/hook", "loopback"),
    ("https://[64:ff9b::a00:1]/hook", "private"),
    ("https://metadata.test/hook", "cloud metadata"),
    ("https://internal.test/hook", "private"),
    ("https://mixed.test/hook", "10.0.0.8"),
    ("https://imds6.test/hook", "cloud metadata"),
    ("https://nowhere.test/hook", "resolves to no address"),
]


@pytest.mark.parametrize(("url", "reason"), REJECTED)
async def test_url_rejected(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlRejected, match=re.escape(reason)):
        await strict_guard().check(url)


async def test_localhost_rejected() -> None:
    with pytest.raises(WebhookUrlRejected, match="loopback"):
        await UrlGuard().check("https://localhost/hook")


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://public.test/hook",
        "https://public6.test:8443/hook?topic=orders",
    ],
)
async def test_public_url_accepted(url: str) -> None:
    assert await strict_guard().check(url) == url


async def test_private_rejection_names_the_setting() -> None:
    with pytest.raises(WebhookUrlRejected, match="INTERLINK_WEBHOOK_ALLOW_PRIVATE"):
        await strict_guard().check("https://10.0.0.1/hook")


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://[::1]/hook", "https://internal.test/hook"],
)
async def test_allow_private_accepts_private(url: str) -> None:
    assert await strict_guard(allow_private=True).check(url) == url


async def test_allow_private_accepts_localhost() -> None:
    assert await UrlGuard(allow_private=True).check("https://localhost/hook") == "https://localhost/hook"


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[::ffff:169.254.169.254]/hook",
        "https://metadata.test/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
    ],
)
async def test_allow_private_still_rejects(url: str) -> None:
    with pytest.raises(WebhookUrlRejected):
        await strict_guard(allow_private=True).check(url)


async def test_allow_http_accepts_http() -> None:
    assert (
        await strict_guard(allow_http=True).check("http://93.184.216.34/hook") == "http://93.184.216.34/hook"
    )


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records where it was asked to connect and connects nowhere."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.connects: list[tuple[str, int]] = []
        self.failing = failing or set()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface names it so
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host in self.failing:
            raise httpcore.ConnectError(f"refused by the test: {host}")
        return httpcore.AsyncMockStream([])


async def test_backend_connects_to_checked_address() -> None:
    inner = RecordingBackend()
    backend = GuardedNetworkBackend(strict_guard(), inner)
    await backend.connect_tcp("public.test", 443)
    assert inner.connects == [("93.184.216.34", 443)]


async def test_backend_rejects_before_connecting() -> None:
    inner = RecordingBackend()
    backend = GuardedNetworkBackend(strict_guard(), inner)
    with pytest.raises(WebhookUrlRejected, match="private"):
        await backend.connect_tcp("mixed.test", 443)
    assert inner.connects == []


async def test_backend_rejects_literal_address() -> None:
    inner = RecordingBackend()
    backend = GuardedNetworkBackend(strict_guard(), inner)
    with pytest.raises(WebhookUrlRejected, match="cloud metadata"):
        await backend.connect_tcp("169.254.169.254", 80)
    assert inner.connects == []


async def test_backend_tries_next_checked_address() -> None:
    resolver = LocalResolver(names={"two.test": _ips("93.184.216.34", "93.184.216.35")})
    inner = RecordingBackend(failing={"93.184.216.34"})
    backend = GuardedNetworkBackend(UrlGuard(resolver=resolver), inner)
    await backend.connect_tcp("two.test", 443)
    assert inner.connects == [("93.184.216.34", 443), ("93.184.216.35", 443)]


async def test_dns_change_after_creation_rejected() -> None:
    resolver = LocalResolver(names={"rebind.test": _ips("93.184.216.34")})
    guard = UrlGuard(resolver=resolver)
    assert await guard.check("https://rebind.test/hook") == "https://rebind.test/hook"

    resolver.names["rebind.test"] = _ips("10.0.0.7")
    inner = RecordingBackend()
    with pytest.raises(WebhookUrlRejected, match=re.escape("10.0.0.7")):
        await GuardedNetworkBackend(guard, inner).connect_tcp("rebind.test", 443)
    assert inner.connects == []


async def test_backend_refuses_unix_sockets() -> None:
    with pytest.raises(WebhookUrlRejected):
        await GuardedNetworkBackend(strict_guard(), RecordingBackend()).connect_unix_socket("/run/x.sock")
