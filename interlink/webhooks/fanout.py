"""The fan-out step: new outbox events become pending deliveries, one per subscribed endpoint.

The outbox is read in commit order from the position saved by the last
fan-out, and the new position is saved in the same transaction as the
deliveries, so an event is fanned out exactly once even when the process
dies half-way. Events are read before endpoints: an endpoint commits before
any event numbered after it, so an event that is visible implies that the
endpoints it is meant for are visible too.
"""

from __future__ import annotations

import logging
from datetime import datetime

from interlink.store import Database
from interlink.store.events import Event, list_events
from interlink.store.webhooks import (
    EndpointRow,
    enabled_endpoints,
    event_exists_after,
    fanout_position,
    insert_deliveries,
    save_fanout_position,
)
from interlink.webhooks.matrix_target import is_own_message_change

logger = logging.getLogger(__name__)

FANOUT_BATCH = 500
# Batches per call: a large backlog is worked through over several calls,
# so one call never holds the worker (or SQLite's write lock) for long.
MAX_BATCHES_PER_CALL = 20


async def fan_out(db: Database, *, now: datetime, batch: int = FANOUT_BATCH) -> int:
    """Queue deliveries for the events committed since the last fan-out; return how many were queued."""
    async with db.read() as connection:
        position = await fanout_position(connection)
        if not await event_exists_after(connection, position):
            return 0

    queued = 0
    for _ in range(MAX_BATCHES_PER_CALL):
        async with db.write() as connection:
            position = await fanout_position(connection, lock=True)
            new_events = await list_events(connection, after=position, limit=batch)
            if not new_events:
                break
            endpoints = await enabled_endpoints(connection)
            pairs = [
                (event.id, endpoint.id)
                for event in new_events
                for endpoint in endpoints
                if event.seq > endpoint.start_seq and _receives(endpoint, event)
            ]
            queued += await insert_deliveries(connection, pairs, now=now)
            last = new_events[-1]
            await save_fanout_position(connection, (last.seq, last.pk))
        if len(new_events) < batch:
            break
    if queued:
        logger.debug("webhook.fanout.queued deliveries=%d", queued)
    return queued


def _receives(endpoint: EndpointRow, event: Event) -> bool:
    if not endpoint.subscribes_to(event.type, event.connection_id):
        return False
    # A Matrix room would otherwise hear of its own messages after every sync of its connection.
    return not is_own_message_change(endpoint, event)
