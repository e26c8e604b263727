"""The operator's OAuth clients, and the database lease that makes token refreshes single-flight.

``DatabaseRefreshCoordinator`` is the refresh coordinator of processes that
share a database (see ``interlink.connectors.oauth``). Its lease is a row per
connection in ``oauth_refresh_locks``, taken with a conditional update in a
short transaction of its own and released the same way, so no transaction
stays open while the token endpoint responds. A lease that is not released
(its process died) expires after ``lease_duration``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.crypto import CredentialBox
from interlink.model import new_id
from interlink.store.connections import get_connection
from interlink.store.database import Database
from interlink.store.tables import oauth_clients, oauth_refresh_locks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OAuthClientSettings:
    """The operator's OAuth client of one integration; the URLs override the integration's defaults."""

    client_id: str
    client_secret: str
    authorize_url: str | None = None
    token_url: str | None = None


@dataclass(frozen=True)
class OAuthClientState:
    """Whether an integration has an OAuth client, without its values."""

    integration: str
    configured: bool
    updated_at: datetime | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def save_oauth_client(
    db: Database, box: CredentialBox, integration: str, client: OAuthClientSettings, *, now: datetime
) -> OAuthClientState:
    """Store (or replace) the integration's OAuth client, encrypted with the credential keys."""
    values: dict[str, str] = {"client_id": client.client_id, "client_secret": client.client_secret}
    if client.authorize_url:
        values["authorize_url"] = client.authorize_url
    if client.token_url:
        values["token_url"] = client.token_url
    sealed = box.encrypt(values)
    statement: Any
    async with db.write() as connection:
        if connection.dialect.name == "postgresql":
            statement = postgresql.insert(oauth_clients)
        else:
            statement = sqlite.insert(oauth_clients)
        statement = statement.values(integration=integration, sealed=sealed, created_at=now, updated_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[oauth_clients.c.integration], set_={"sealed": sealed, "updated_at": now}
        )
        await connection.execute(statement)
    logger.info("oauth.client.saved integration=%s", integration)
    return OAuthClientState(integration, True, now)


async def oauth_client_state(connection: AsyncConnection, integration: str) -> OAuthClientState:
    query = select(oauth_clients.c.updated_at).where(oauth_clients.c.integration == integration)
    updated_at = (await connection.execute(query)).scalar_one_or_none()
    return OAuthClientState(integration, updated_at is not None, updated_at)


async def load_oauth_client(
    connection: AsyncConnection, box: CredentialBox, integration: str
) -> OAuthClientSettings | None:
    query = select(oauth_clients.c.sealed).where(oauth_clients.c.integration == integration)
    sealed = (await connection.execute(query)).scalar_one_or_none()
    if sealed is None:
        return None
    values = box.decrypt(sealed)
    return OAuthClientSettings(
        client_id=values["client_id"],
        client_secret=values["client_secret"],
        authorize_url=values.get("authorize_url"),
        token_url=values.get("token_url"),
    )


async def acquire_refresh_lease(
    connection: AsyncConnection, connection_id: str, *, owner: str, now: datetime, until: datetime
) -> bool:
    """Take the refresh lease of a connection when it is free or expired; return whether it was taken."""
    statement: Any
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(oauth_refresh_locks)
    else:
        statement = sqlite.insert(oauth_refresh_locks)
    await connection.execute(statement.values(connection_id=connection_id).on_conflict_do_nothing())
    result = await connection.execute(
        update(oauth_refresh_locks)
        .where(
            oauth_refresh_locks.c.connection_id == connection_id,
            or_(oauth_refresh_locks.c.owner.is_(None), oauth_refresh_locks.c.expires_at <= now),
        )
        .values(owner=owner, expires_at=until)
        .returning(oauth_refresh_locks.c.connection_id)
    )
    return result.first() is not None


async def release_refresh_lease(connection: AsyncConnection, connection_id: str, *, owner: str) -> None:
    await connection.execute(
        update(oauth_refresh_locks)
        .where(oauth_refresh_locks.c.connection_id == connection_id, oauth_refresh_locks.c.owner == owner)
        .values(owner=None, expires_at=None)
    )


class DatabaseRefreshCoordinator:
    """Refresh leases held in the database, so that processes sharing it refresh a token once.

    ``lease`` polls for a held lease at most ``max_wait`` seconds, then raises
    ``TimeoutError``. Inside the lease, ``latest`` reads the connection's
    stored credentials. When the operator's OAuth client for the integration
    has the same client id as the connection, its current secret replaces the
    stored one, so a rotated client secret takes effect at the next refresh.
    """

    def __init__(
        self,
        db: Database,
        box: CredentialBox,
        *,
        lease_duration: timedelta = timedelta(seconds=60),
        max_wait: float = 90.0,
        poll_interval: float = 0.1,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.db = db
        self.box = box
        self.lease_duration = lease_duration
        self.max_wait = max_wait
        self.poll_interval = poll_interval
        self.clock = clock

    @asynccontextmanager
    async def lease(self, connection_id: str) -> AsyncIterator[_StoredCredentialsLease]:
        owner = new_id("rfl")
        await self._acquire(connection_id, owner)
        try:
            yield _StoredCredentialsLease(self, connection_id)
        finally:
            async with self.db.write() as connection:
                await release_refresh_lease(connection, connection_id, owner=owner)

    async def _acquire(self, connection_id: str, owner: str) -> None:
        deadline = time.monotonic() + self.max_wait
        attempts = max(1, int(self.max_wait / self.poll_interval) + 1)
        for attempt in range(attempts):
            now = self.clock()
            async with self.db.write() as connection:
                taken = await acquire_refresh_lease(
                    connection, connection_id, owner=owner, now=now, until=now + self.lease_duration
                )
            if taken:
                if attempt:
                    logger.info(
                        "oauth.refresh_lease.acquired connection_id=%s waits=%d", connection_id, attempt
                    )
                return
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(self.poll_interval)
        raise TimeoutError(
            f"another process has held the token refresh lease for over {self.max_wait:.0f} s; "
            "the sync is retried later"
        )

    async def stored_credentials(self, connection_id: str) -> dict[str, str] | None:
        async with self.db.read() as connection:
            row = await get_connection(connection, connection_id)
            if row is None:
                return None
            client = await load_oauth_client(connection, self.box, row.integration)
        credentials = self.box.decrypt(row.credentials)
        if client is not None and client.client_id == credentials.get("client_id"):
            credentials["client_secret"] = client.client_secret
        return credentials


class _StoredCredentialsLease:
    def __init__(self, coordinator: DatabaseRefreshCoordinator, connection_id: str) -> None:
        self.coordinator = coordinator
        self.connection_id = connection_id

    async def latest(self, known: Mapping[str, str]) -> Mapping[str, str]:
        stored = await self.coordinator.stored_credentials(self.connection_id)
        return stored if stored is not None else known

    async def refreshed(self, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        """Nothing to note: the session stored ``new`` through ``save_credentials``."""
