"""Helpers shared by the sandbox tests: a movable clock, running syncs, reading stored records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from interlink.connectors.base import Integration
from interlink.connectors.registry import get_integration
from interlink.runtime import Runtime
from interlink.store.connections import get_connection
from interlink.store.records import RecordFilter, StoredRecord, list_records
from interlink.store.runs import RunRow
from interlink.sync.requests import request_syncs


class MovableClock:
    """A clock that stands still until a test moves it; starts at the current second."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = (start or datetime.now(UTC)).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def use_integration(runtime: Runtime, integration: Integration) -> None:
    """Make the runtime's engine build connectors from ``integration`` instead of the registered one."""

    def lookup(name: str) -> Integration | None:
        return integration if name == integration.name else get_integration(name)

    runtime.engine.integration_lookup = lookup


async def sync(runtime: Runtime, connection_id: str, entity: str, mode: str = "incremental") -> RunRow:
    """Queue one run of ``entity`` and execute it in this process; return the finished run."""
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=[entity],
        mode=mode,
        trigger="manual",
        now=datetime.now(UTC),
    )
    finished = await runtime.engine.execute_run(run.id)
    assert finished is not None
    return finished


async def stored(runtime: Runtime, connection_id: str, entity: str) -> dict[str, StoredRecord]:
    """Return the stored records of one entity by remote id, deleted ones included."""
    async with runtime.db.read() as db:
        rows = await list_records(
            db,
            RecordFilter(entity=entity, connection_id=connection_id, include_deleted=True),
            after=None,
            limit=10_000,
        )
    return {row.remote_id: row for row in rows}


async def connection_status(runtime: Runtime, connection_id: str) -> tuple[str, str | None]:
    """Return the connection's status and status reason."""
    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
    assert connection is not None
    return connection.status, connection.status_reason
