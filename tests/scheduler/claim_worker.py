"""A scheduler process for the claim tests: waits for "go" on standard input, ticks once, prints its claims.

Run as ``python -m tests.scheduler.claim_worker DATABASE_URL NOW BATCH``. It
prints "ready" once connected, then, after "go", one JSON line with the
(connection, entity) pairs it claimed and the number of runs it queued.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.store import Database
from interlink.store.schedules import ClaimedSchedule, claim_due_schedules
from interlink.sync import scheduler as scheduler_module
from interlink.sync.scheduler import Scheduler
from tests.scheduler.conftest import scheduled_integration
from tests.support.memory_source import MemorySource, lookup_for


async def main(url: str, now: datetime, batch: int) -> None:
    claimed: list[tuple[str, str]] = []

    async def recording_claim(
        connection: AsyncConnection, *, now: datetime, limit: int
    ) -> Sequence[ClaimedSchedule]:
        items = await claim_due_schedules(connection, now=now, limit=limit)
        claimed.extend((item.schedule.connection_id, item.schedule.entity) for item in items)
        return items

    # Replaced in the scheduler's namespace, where its ticks look the function up.
    vars(scheduler_module)["claim_due_schedules"] = recording_claim
    db = Database(url)
    scheduler = Scheduler(
        db,
        None,
        clock=lambda: now,
        batch=batch,
        integration_lookup=lookup_for(scheduled_integration(MemorySource())),
    )
    async with db.read():
        pass  # connect before the signal, so the processes start claiming together
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        queued = await scheduler.tick()
    finally:
        await db.dispose()
    print(json.dumps({"claimed": claimed, "queued": queued}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3])))
