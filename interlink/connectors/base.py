"""The connector contract: what an integration declares and what its connector offers.

An integration declares, as data, its auth schemes, entities, capabilities and
limits; the API, the connect pages and the docs are generated from that. A
connector is built per connection and reads pages of unified records. It never
touches the database: the sync engine owns transactions, hashing and counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import httpx

from interlink.model import EntityData

SyncMode = Literal["incremental", "full"]


@dataclass(frozen=True)
class CredentialField:
    """One credential a user enters to link a system."""

    name: str
    label: str
    help: str
    secret: bool = False
    required: bool = True


@dataclass(frozen=True)
class AuthScheme:
    """One way to authenticate, with the credential fields it needs."""

    name: str
    label: str
    fields: tuple[CredentialField, ...]

    def field_names(self, *, required_only: bool = False) -> set[str]:
        return {f.name for f in self.fields if f.required or not required_only}


@dataclass(frozen=True)
class EntityCapabilities:
    """The operations a connector supports for one entity."""

    entity: str
    read: bool = True
    incremental: bool = True
    full: bool = True
    detects_deletions: bool = True
    write: bool = False


@dataclass(frozen=True)
class Limits:
    """Limits a connector keeps towards its source."""

    max_concurrent_requests: int = 4
    requests_per_second: float | None = None


@dataclass(frozen=True)
class SourceRecord:
    """One record as a connector read it: unified fields plus the raw source record.

    ``raw`` must already be stripped of fields that change on every fetch
    without the record changing, so that the content hash stays stable.
    """

    remote_id: str
    data: EntityData
    raw: Mapping[str, Any]
    remote_created_at: datetime | None = None
    remote_updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True)
class Page:
    """A page of records and the cursor to resume after it.

    ``cursor`` is opaque to the engine and committed with the page's records.
    ``complete`` is set on the last page of a full read that enumerated the
    whole window, which allows the engine to reconcile deletions.
    """

    records: Sequence[SourceRecord]
    cursor: str | None
    complete: bool = False


@dataclass(frozen=True)
class ReadWindow:
    """The scope of a read: changes since a cursor, or everything since ``history_start``."""

    mode: SyncMode
    history_start: datetime


class EntityReader(Protocol):
    def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        """Yield pages of records in the window, each with the cursor that follows it."""
        ...


class EntityWriter(Protocol):
    async def create(self, data: Mapping[str, Any], *, idempotency_key: str | None) -> SourceRecord: ...

    async def update(
        self, remote_id: str, data: Mapping[str, Any], *, idempotency_key: str | None
    ) -> SourceRecord: ...


class Connector(Protocol):
    """The code of one integration, bound to one connection's credentials."""

    async def check(self) -> None:
        """Make one cheap authenticated call; raise a ``ConnectorError`` when it fails."""
        ...

    def reader(self, entity: str) -> EntityReader: ...

    def writer(self, entity: str) -> EntityWriter | None: ...


SaveCredentials = Callable[[Mapping[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class ConnectorContext:
    """Everything a connector is built from, for one connection."""

    connection_id: str
    auth_scheme: str
    credentials: Mapping[str, str]
    http: httpx.AsyncClient
    save_credentials: SaveCredentials


@dataclass(frozen=True)
class Integration:
    """A kind of system Interlink can talk to, declared as data."""

    name: str
    label: str
    description: str
    auth_schemes: tuple[AuthScheme, ...]
    entities: tuple[EntityCapabilities, ...]
    build: Callable[[ConnectorContext], Connector]
    limits: Limits = field(default_factory=Limits)
    # How far an incremental read starts before its cursor, so that equal
    # timestamps at a page boundary, clock skew and records that changed
    # during the previous read are read again.
    lookback: timedelta = timedelta(minutes=5)
    # Fields removed from raw records before hashing because they change on
    # every fetch without the record changing.
    volatile_fields: tuple[str, ...] = ()

    def entity_names(self) -> list[str]:
        return [capabilities.entity for capabilities in self.entities]

    def capabilities(self, entity: str) -> EntityCapabilities | None:
        return next((c for c in self.entities if c.entity == entity), None)

    def auth_scheme(self, name: str) -> AuthScheme | None:
        return next((scheme for scheme in self.auth_schemes if scheme.name == name), None)

    def secret_fields(self) -> set[str]:
        return {f.name for scheme in self.auth_schemes for f in scheme.fields if f.secret}
