"""Test doubles and helpers shared by the webhook tests."""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from interlink.runtime import Runtime
from interlink.store.events import append_event
from interlink.store.tables import deliveries
from interlink.store.webhooks import DeliveryRow, EndpointRow, get_delivery
from interlink.webhooks.endpoints import create_endpoint
from interlink.webhooks.fanout import fan_out
from interlink.webhooks.urls import IPAddress, UrlGuard

RECEIVER_NAME = "receiver.test"
LOOPBACK = ipaddress.ip_address("127.0.0.1")


class FakeClock:
    """A settable clock for leases and retry times, so tests never sleep through a delay."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class SigningClock:
    """Wall-clock seconds that move forward by one on every reading, so each attempt's timestamp differs.

    Receivers accept timestamps within five minutes of their own clock, so it
    starts at the real time.
    """

    def __init__(self) -> None:
        self._ticks = itertools.count(int(time.time()))

    def __call__(self) -> float:
        return float(next(self._ticks))


@dataclass
class LocalResolver:
    """Resolves the ``.test`` names of a test without DNS; any other name is a test bug."""

    names: dict[str, list[IPAddress]] = field(default_factory=lambda: {RECEIVER_NAME: [LOOPBACK]})
    calls: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if host not in self.names:
            raise AssertionError(f"the test tried to resolve {host!r}, which it did not map")
        return list(self.names[host])


async def make_endpoint(
    runtime: Runtime,
    guard: UrlGuard,
    url: str,
    event_types: Sequence[str] = ("*",),
    connection_id: str | None = None,
) -> tuple[EndpointRow, str]:
    return await create_endpoint(
        runtime.db, url, event_types, connection_id, credentials=runtime.credentials, guard=guard
    )


async def emit(
    runtime: Runtime,
    event_type: str = "sync.completed",
    data: dict[str, Any] | None = None,
    connection_id: str | None = None,
) -> str:
    """Write one event to the outbox in its own transaction and return its id."""
    async with runtime.db.write() as db:
        return await append_event(db, event_type, data or {"run_id": "run_1"}, connection_id=connection_id)


async def queued_deliveries(runtime: Runtime, clock: FakeClock) -> list[DeliveryRow]:
    """Fan out the outbox and return every delivery, oldest first."""
    await fan_out(runtime.db, now=clock())
    async with runtime.db.read() as db:
        ids = (
            await db.execute(select(deliveries.c.id).order_by(deliveries.c.created_at, deliveries.c.id))
        ).scalars()
        rows = [await get_delivery(db, str(value)) for value in ids]
    return [row for row in rows if row is not None]


async def reload(runtime: Runtime, delivery_id: str) -> DeliveryRow:
    async with runtime.db.read() as db:
        row = await get_delivery(db, delivery_id)
    assert row is not None
    return row
