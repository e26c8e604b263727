"""An in-memory source system for unit tests of the sync engine.

It pages through its records in (updated_at, remote id) order with a
keyset cursor, as a well-behaved timestamp-based API does, and can be told
to fail or hang at a given page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from interlink.connectors.base import (
    AuthScheme,
    ConnectorContext,
    CredentialField,
    EntityCapabilities,
    EntityReader,
    EntityWriter,
    Integration,
    Page,
    ReadWindow,
    SourceRecord,
)
from interlink.connectors.errors import AuthenticationError, ConnectorError
from interlink.model import Vendor
from interlink.runtime import Runtime
from interlink.store.connections import insert_connection


@dataclass
class MemorySource:
    """The source's records and its failure switches."""

    records: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    page_size: int = 3
    password: str = "right-password"
    fail_at_page: int | None = None
    failure: type[ConnectorError] | None = None
    hang_at_page: int | None = None
    pages_served: int = 0

    def put(self, remote_id: str, name: str, updated_at: datetime) -> None:
        self.records[remote_id] = (name, updated_at)


class _Reader:
    def __init__(self, source: MemorySource, lookback: timedelta) -> None:
        self.source = source
        self.lookback = lookback

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        position = json.loads(cursor) if cursor else None
        if window.mode == "full":
            lower = (window.history_start, "")
            if position is not None and position.get("full"):
                lower = (datetime.fromisoformat(position["ts"]), position["id"])
        elif position is None:
            lower = (datetime.min.replace(tzinfo=window.history_start.tzinfo), "")
        else:
            lower = (datetime.fromisoformat(position["ts"]) - self.lookback, "")
        page_number = 0
        while True:
            ordered = sorted(
                (updated_at, remote_id, name)
                for remote_id, (name, updated_at) in self.source.records.items()
                if (updated_at, remote_id) > lower
            )
            batch = ordered[: self.source.page_size]
            page_number += 1
            self.source.pages_served += 1
            if self.source.fail_at_page == page_number and self.source.failure is not None:
                raise self.source.failure("injected failure")
            if self.source.hang_at_page == page_number:
                await asyncio.Event().wait()
            last = len(ordered) <= self.source.page_size
            if batch:
                lower = (batch[-1][0], batch[-1][1])
            next_cursor = json.dumps(
                {"ts": lower[0].isoformat(), "id": lower[1], "full": window.mode == "full" and not last}
            )
            yield Page(
                records=[_record(remote_id, name, updated_at) for updated_at, remote_id, name in batch],
                cursor=next_cursor,
                complete=last and window.mode == "full",
            )
            if last:
                return


def _record(remote_id: str, name: str, updated_at: datetime) -> SourceRecord:
    raw = {"id": remote_id, "name": name, "updated": updated_at.isoformat(), "fetched_at": "volatile"}
    return SourceRecord(remote_id=remote_id, data=Vendor(name=name), raw=raw, remote_updated_at=updated_at)


class _Connector:
    def __init__(self, source: MemorySource, context: ConnectorContext, lookback: timedelta) -> None:
        self.source = source
        self.context = context
        self.lookback = lookback

    async def check(self) -> None:
        if self.context.credentials.get("password") != self.source.password:
            raise AuthenticationError("password rejected")

    def reader(self, entity: str) -> EntityReader:
        if self.context.credentials.get("password") != self.source.password:
            raise AuthenticationError("password rejected")
        return _Reader(self.source, self.lookback)

    def writer(self, entity: str) -> EntityWriter | None:
        return None


def memory_integration(source: MemorySource, *, lookback: timedelta = timedelta(minutes=5)) -> Integration:
    def build(context: ConnectorContext) -> _Connector:
        return _Connector(source, context, lookback)

    return Integration(
        name="memory",
        label="Memory",
        description="An in-memory source for tests.",
        auth_schemes=(
            AuthScheme("password", "Password", (CredentialField("password", "Password", "", True),)),
        ),
        entities=(EntityCapabilities("vendor"),),
        build=build,
        lookback=lookback,
        volatile_fields=("fetched_at",),
    )


def lookup_for(integration: Integration) -> Any:
    def lookup(name: str) -> Integration | None:
        return integration if name == integration.name else None

    return lookup


def credentials(password: str) -> Mapping[str, str]:
    return {"password": password}


async def insert_memory_connection(runtime: Runtime) -> str:
    """Store a connection to the ``memory`` integration with the right password; return its id."""
    async with runtime.db.write() as db:
        row = await insert_connection(
            db,
            integration="memory",
            auth_scheme="password",
            end_user_id="customer-1",
            end_user_name=None,
            end_user_email=None,
            credentials=runtime.credentials.encrypt(credentials("right-password")),
            settings={"history_days": 30},
        )
    return row.id
