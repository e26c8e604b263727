"""Requesting syncs: queue runs in the database, then hand them to the dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from interlink.store import Database
from interlink.store.runs import RunRow, queue_run
from interlink.sync.dispatch import PRIORITY_MANUAL, PRIORITY_SCHEDULED, Dispatcher

logger = logging.getLogger(__name__)


async def request_syncs(
    db: Database,
    dispatcher: Dispatcher | None,
    *,
    connection_id: str,
    entities: Sequence[str],
    mode: str,
    trigger: str,
    now: datetime,
) -> list[RunRow]:
    """Queue one run per entity (or return the one already waiting) and dispatch them after commit."""
    runs: list[RunRow] = []
    async with db.write() as connection:
        for entity in entities:
            run, created = await queue_run(
                connection, connection_id=connection_id, entity=entity, mode=mode, trigger=trigger, now=now
            )
            runs.append(run)
            if created:
                logger.info(
                    "sync.run.queued run_id=%s connection_id=%s entity=%s mode=%s trigger=%s",
                    run.id,
                    connection_id,
                    entity,
                    mode,
                    trigger,
                )
    if dispatcher is not None:
        priority = PRIORITY_SCHEDULED if trigger == "schedule" else PRIORITY_MANUAL
        for run in runs:
            await dispatcher.dispatch(run.id, priority=priority)
    return runs
