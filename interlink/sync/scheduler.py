"""The scheduler: queues every connection's incremental and full syncs when they are due.

Due times live in the database, one row per (connection, entity). Each tick
claims the due rows, queues one run per row unless a run of that pair is
already queued or running, and advances the rows, all in one transaction.
The runs are dispatched only after that transaction commits, at scheduled
priority, so manual and API triggers go first. A run whose dispatch was lost
(the process stopped right after the commit) stays queued, and the reaper
dispatches it again.

Due times sit on a grid per (connection, entity): the multiples of the
interval, shifted by an offset taken from a hash of the pair, so connections
created together do not all fire together. A random part of at most 5% of the
interval, and at most 5 minutes, is added to each due time. The next due time
is the first grid point at least half an interval after the claim. A server
that was down for a day therefore runs one catch-up sync per entity, then
returns to its grid.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.connectors.base import EntityCapabilities, Integration
from interlink.connectors.registry import get_integration
from interlink.model import ConnectionSettings
from interlink.store import Database
from interlink.store.connections import ConnectionRow
from interlink.store.runs import list_sync_states, queue_run
from interlink.store.schedules import (
    SCHEDULED_STATUSES,
    ActiveRun,
    ClaimedSchedule,
    RunRequest,
    Schedule,
    ScheduleUpdate,
    active_runs,
    claim_due_schedules,
    connections_without_schedules,
    delete_schedules,
    insert_schedule,
    insert_scheduled_runs,
    list_schedules,
    schedule_keys,
    update_schedules,
)
from interlink.sync.dispatch import PRIORITY_SCHEDULED, Dispatcher

logger = logging.getLogger(__name__)

IntegrationLookup = Callable[[str], Integration | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RANDOM_JITTER_FRACTION = 0.05
_MAX_RANDOM_JITTER = timedelta(minutes=5)
# A due full sync waits this long, and is then tried again, while an incremental run of its pair runs.
FULL_SYNC_RETRY_DELAY = timedelta(minutes=1)
# A schedule that cannot be planned (its integration is not installed) is tried again after this long.
UNPLANNABLE_RETRY_DELAY = timedelta(hours=1)

_default_rng = random.Random()
_started_schedulers: weakref.WeakSet[Scheduler] = weakref.WeakSet()


def _microseconds(value: timedelta) -> int:
    return value // timedelta(microseconds=1)


def phase_offset(key: str, interval: timedelta) -> timedelta:
    """Return the grid offset of ``key``: the same for every call, in ``[0, interval)``."""
    digest = hashlib.sha256(key.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(microseconds=int(fraction * _microseconds(interval)))


def max_random_jitter(interval: timedelta) -> timedelta:
    """Return the bound of the random part added to a due time of this interval."""
    return min(interval * _RANDOM_JITTER_FRACTION, _MAX_RANDOM_JITTER)


def next_due(key: str, interval: timedelta, *, after: datetime, rng: random.Random) -> datetime:
    """Return the first grid point of ``key`` at least half an interval after ``after``, plus jitter."""
    period = _microseconds(interval)
    offset = _microseconds(phase_offset(key, interval))
    earliest = _microseconds(after - _EPOCH) + period // 2
    steps = -(-(earliest - offset) // period)  # ceiling division
    grid_point = _EPOCH + timedelta(microseconds=offset + steps * period)
    jitter = timedelta(microseconds=int(rng.random() * _microseconds(max_random_jitter(interval))))
    return grid_point + jitter


def latest_next_due(interval: timedelta, *, after: datetime) -> datetime:
    """Return the bound that ``next_due`` stays below for this interval."""
    return after + interval * 1.5 + max_random_jitter(interval)


def incremental_key(connection_id: str, entity: str) -> str:
    return f"{connection_id}/{entity}"


def full_key(connection_id: str, entity: str) -> str:
    return f"{connection_id}/{entity}/full"


def scheduled_entities(integration: Integration, settings: ConnectionSettings) -> list[EntityCapabilities]:
    """Return the capabilities of the enabled entities that the integration can read, in its order."""
    # An empty list enables every entity, as for manual triggers.
    enabled = settings.entities or integration.entity_names()
    return [
        capabilities
        for capabilities in integration.entities
        if capabilities.read and capabilities.entity in enabled
    ]


async def keep_schedules_in_step(
    db: AsyncConnection,
    connection_id: str,
    integration_name: str,
    settings: Mapping[str, Any],
    *,
    now: datetime,
    integration_lookup: IntegrationLookup = get_integration,
    rng: random.Random | None = None,
) -> None:
    """Create, drop and pull in a connection's schedules so they match its settings.

    A new entity is due at once, so its first sync does not wait an interval.
    A due time further away than the current frequency allows (it was set under
    a longer frequency) is computed again. A nearer one is kept, so a longer
    frequency takes effect after the next sync.
    """
    integration = integration_lookup(integration_name)
    if integration is None:
        logger.warning(
            "sync.schedule.integration_missing connection_id=%s integration=%s",
            connection_id,
            integration_name,
        )
        return
    parsed = ConnectionSettings.model_validate(settings)
    scheduled = {
        capabilities.entity: capabilities for capabilities in scheduled_entities(integration, parsed)
    }
    existing = {schedule.entity: schedule for schedule in await list_schedules(db, connection_id)}
    await delete_schedules(db, connection_id, set(existing) - set(scheduled))

    rng = rng or _default_rng
    updates: list[ScheduleUpdate] = []
    for entity, capabilities in scheduled.items():
        next_full_at = _next_full_in_step(
            existing.get(entity), capabilities, parsed, connection_id, now=now, rng=rng
        )
        schedule = existing.get(entity)
        if schedule is None:
            await insert_schedule(
                db,
                connection_id=connection_id,
                entity=entity,
                next_incremental_at=now,
                next_full_at=next_full_at,
                now=now,
            )
            continue
        next_incremental_at = schedule.next_incremental_at
        if next_incremental_at > latest_next_due(parsed.sync_frequency, after=now):
            key = incremental_key(connection_id, entity)
            next_incremental_at = next_due(key, parsed.sync_frequency, after=now, rng=rng)
        if (next_incremental_at, next_full_at) != (schedule.next_incremental_at, schedule.next_full_at):
            updates.append(ScheduleUpdate(connection_id, entity, next_incremental_at, next_full_at))
    await update_schedules(db, updates, now=now)


def _next_full_in_step(
    schedule: Schedule | None,
    capabilities: EntityCapabilities,
    settings: ConnectionSettings,
    connection_id: str,
    *,
    now: datetime,
    rng: random.Random,
) -> datetime | None:
    if not capabilities.full:
        return None
    current = schedule.next_full_at if schedule is not None else None
    if current is not None and current <= latest_next_due(settings.full_sync_frequency, after=now):
        return current
    key = full_key(connection_id, capabilities.entity)
    return next_due(key, settings.full_sync_frequency, after=now, rng=rng)


@dataclass(frozen=True)
class _Plan:
    """The outcome of planning one claimed schedule: the run to queue, if any, and its new due times."""

    queue_mode: str | None
    update: ScheduleUpdate | None  # None drops the schedule: its entity is no longer scheduled


def plan_schedule(
    schedule: Schedule,
    capabilities: EntityCapabilities,
    settings: ConnectionSettings,
    runs: Sequence[ActiveRun],
    *,
    now: datetime,
    rng: random.Random,
) -> _Plan:
    """Decide the run to queue for a due schedule and advance its due times.

    Runs of one pair never overlap, so nothing is queued beside a queued or
    running run. A due incremental sync is then skipped, since that run covers
    it. A due full sync turns a waiting run into a full one, counts as done when
    a full run is running, and is retried shortly when an incremental one is.
    """
    connection_id, entity = schedule.connection_id, schedule.entity
    incremental_due = schedule.next_incremental_at <= now
    full_due = capabilities.full and schedule.next_full_at is not None and schedule.next_full_at <= now
    running = next((run for run in runs if run.status == "running"), None)
    waiting = next((run for run in runs if run.status == "queued"), None)
    # A full pass covers an incremental one, whether it is queued now or already running.
    full_covered = full_due and (running is None or running.mode == "full")

    if full_due and not full_covered:
        next_full_at: datetime | None = now + FULL_SYNC_RETRY_DELAY
    elif full_due:
        next_full_at = next_due(
            full_key(connection_id, entity), settings.full_sync_frequency, after=now, rng=rng
        )
    else:
        next_full_at = _next_full_in_step(schedule, capabilities, settings, connection_id, now=now, rng=rng)
    next_incremental_at = schedule.next_incremental_at
    if incremental_due or full_covered:
        key = incremental_key(connection_id, entity)
        next_incremental_at = next_due(key, settings.sync_frequency, after=now, rng=rng)

    queue_mode: str | None = None
    if full_due and running is None:
        queue_mode = "full"
    elif incremental_due and running is None and waiting is None:
        queue_mode = "incremental" if capabilities.incremental or not capabilities.full else "full"
    return _Plan(queue_mode, ScheduleUpdate(connection_id, entity, next_incremental_at, next_full_at))


@dataclass(frozen=True)
class EntitySyncOverview:
    """One entity's last successful syncs and next due times, as the API shows them."""

    entity: str
    last_success_at: datetime | None
    last_full_success_at: datetime | None
    next_sync_at: datetime | None
    next_full_sync_at: datetime | None


async def describe_entity_syncs(
    db: AsyncConnection, connection: ConnectionRow, *, integration_lookup: IntegrationLookup = get_integration
) -> list[EntitySyncOverview]:
    """Return every scheduled entity of a connection, then any other entity that has synced before.

    The next due times are null while the connection is paused, and for an
    entity whose schedule the scheduler has not created yet.
    """
    states = {state.entity: state for state in await list_sync_states(db, connection.id)}
    schedules = {schedule.entity: schedule for schedule in await list_schedules(db, connection.id)}
    integration = integration_lookup(connection.integration)
    entities: list[str] = []
    if integration is not None:
        settings = ConnectionSettings.model_validate(connection.settings)
        entities = [capabilities.entity for capabilities in scheduled_entities(integration, settings)]
    entities += sorted(set(states) - set(entities))

    paused = connection.status not in SCHEDULED_STATUSES
    overview: list[EntitySyncOverview] = []
    for entity in entities:
        state = states.get(entity)
        schedule = None if paused else schedules.get(entity)
        overview.append(
            EntitySyncOverview(
                entity=entity,
                last_success_at=state.last_success_at if state else None,
                last_full_success_at=state.last_full_success_at if state else None,
                next_sync_at=schedule.next_incremental_at if schedule else None,
                next_full_sync_at=schedule.next_full_at if schedule else None,
            )
        )
    return overview


def wake_schedulers() -> None:
    """Wake every scheduler running in this process, so that changed settings apply without waiting a tick."""
    for scheduler in list(_started_schedulers):
        scheduler.wake()


class Scheduler:
    """Queues due scheduled syncs at a fixed interval, and earlier when woken."""

    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher | None,
        *,
        clock: Callable[[], datetime],
        interval: float = 10.0,
        batch: int = 500,
        max_batches: int = 40,
        integration_lookup: IntegrationLookup = get_integration,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._dispatcher = dispatcher
        self._clock = clock
        self._interval = interval
        self._batch = batch
        self._max_batches = max_batches
        self._integration_lookup = integration_lookup
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Keyset position of the search for connections without schedules, so
        # connections that get none (no readable entity) cannot starve the others.
        self._missing_after: str | None = None

    async def tick(self) -> int:
        """Create missing schedules, queue the runs that are due, and return how many were queued."""
        await self.create_missing_schedules()
        queued = 0
        for _ in range(self._max_batches):
            claimed, run_ids = await self._queue_due_batch()
            if self._dispatcher is not None:
                for run_id in run_ids:
                    await self._dispatcher.dispatch(run_id, priority=PRIORITY_SCHEDULED)
            queued += len(run_ids)
            if claimed < self._batch:
                break
        return queued

    async def create_missing_schedules(self) -> int:
        """Create the schedules of connections that have none, such as those made outside the API."""
        async with self._db.read() as db:
            missing = await connections_without_schedules(db, after_id=self._missing_after, limit=self._batch)
        self._missing_after = missing[-1][0] if len(missing) == self._batch else None
        if not missing:
            return 0
        now = self._clock()
        async with self._db.write() as db:
            for connection_id, integration_name, settings in missing:
                try:
                    async with db.begin_nested():
                        await keep_schedules_in_step(
                            db,
                            connection_id,
                            integration_name,
                            settings,
                            now=now,
                            integration_lookup=self._integration_lookup,
                            rng=self._rng,
                        )
                except IntegrityError:
                    # Another process created them, or the connection was deleted, since the read.
                    logger.debug("sync.schedule.create_skipped connection_id=%s", connection_id)
        return len(missing)

    async def _queue_due_batch(self) -> tuple[int, list[str]]:
        now = self._clock()
        async with self._db.write() as db:
            claimed = await claim_due_schedules(db, now=now, limit=self._batch)
            runs: dict[tuple[str, str], list[ActiveRun]] = {}
            for active in await active_runs(db, {item.schedule.connection_id for item in claimed}):
                runs.setdefault((active.connection_id, active.entity), []).append(active)

            updates: list[ScheduleUpdate] = []
            dropped: dict[str, list[str]] = {}
            requests: list[RunRequest] = []
            upgrades: list[RunRequest] = []
            planner = _BatchPlanner(self._integration_lookup)
            for item in claimed:
                schedule = item.schedule
                pair_runs = runs.get((schedule.connection_id, schedule.entity), [])
                plan = planner.plan(item, pair_runs, now=now, rng=self._rng)
                if plan.update is None:
                    dropped.setdefault(schedule.connection_id, []).append(schedule.entity)
                    continue
                updates.append(plan.update)
                if plan.queue_mode is None:
                    continue
                request = RunRequest(schedule.connection_id, schedule.entity, plan.queue_mode)
                waiting = next((run for run in pair_runs if run.status == "queued"), None)
                if waiting is None:
                    requests.append(request)
                elif plan.queue_mode == "full" and waiting.mode != "full":
                    upgrades.append(request)

            created, conflicts = await insert_scheduled_runs(db, requests, now=now)
            # Rare: a waiting run to turn into a full one, or a pair that another
            # transaction queued since the read. queue_run handles both one by one.
            for request in [*conflicts, *upgrades]:
                queued, new = await queue_run(
                    db,
                    connection_id=request.connection_id,
                    entity=request.entity,
                    mode=request.mode,
                    trigger="schedule",
                    now=now,
                )
                if new:
                    created.append(
                        ActiveRun(queued.id, queued.connection_id, queued.entity, queued.status, queued.mode)
                    )
            await update_schedules(db, updates, now=now)
            for connection_id, entities in dropped.items():
                await delete_schedules(db, connection_id, entities)
            await self._add_enabled_entities(db, planner, now=now)

        for run in created:
            logger.info(
                "sync.run.queued run_id=%s connection_id=%s entity=%s mode=%s trigger=schedule",
                run.id,
                run.connection_id,
                run.entity,
                run.mode,
            )
        if claimed:
            logger.debug("sync.scheduler.batch claimed=%d queued=%d", len(claimed), len(created))
        return len(claimed), [run.id for run in created]

    async def _add_enabled_entities(
        self, db: AsyncConnection, planner: _BatchPlanner, *, now: datetime
    ) -> None:
        """Create the missing schedules of the batch's connections, for entities enabled outside the API."""
        scheduled = planner.scheduled_entities()
        existing = await schedule_keys(db, scheduled)
        for connection_id, entities in scheduled.items():
            settings = planner.settings(connection_id)
            for entity, capabilities in entities.items():
                if (connection_id, entity) in existing:
                    continue
                next_full_at = _next_full_in_step(
                    None, capabilities, settings, connection_id, now=now, rng=self._rng
                )
                try:
                    async with db.begin_nested():
                        await insert_schedule(
                            db,
                            connection_id=connection_id,
                            entity=entity,
                            next_incremental_at=now,
                            next_full_at=next_full_at,
                            now=now,
                        )
                except IntegrityError:
                    # A settings change through the API created it since the read.
                    logger.debug(
                        "sync.schedule.create_skipped connection_id=%s entity=%s", connection_id, entity
                    )
                    continue
                logger.info("sync.schedule.created connection_id=%s entity=%s", connection_id, entity)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sync-scheduler")
        _started_schedulers.add(self)

    async def stop(self) -> None:
        _started_schedulers.discard(self)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            # Cleared before the tick, so a wake during the tick leads to another one.
            self._wake.clear()
            try:
                queued = await self.tick()
                if queued:
                    logger.debug("sync.scheduler.ticked queued=%d", queued)
            except Exception:
                logger.exception("sync.scheduler.tick_failed")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)


class _BatchPlanner:
    """Plans the claimed schedules of one batch, parsing each connection's settings once."""

    def __init__(self, integration_lookup: IntegrationLookup) -> None:
        self._integration_lookup = integration_lookup
        self._entities: dict[str, dict[str, EntityCapabilities] | None] = {}
        self._settings: dict[str, ConnectionSettings] = {}

    def plan(
        self, item: ClaimedSchedule, runs: Sequence[ActiveRun], *, now: datetime, rng: random.Random
    ) -> _Plan:
        schedule = item.schedule
        entities = self._scheduled(item)
        if entities is None:
            # Nothing can be decided without the integration, so look again later.
            retry_at = now + UNPLANNABLE_RETRY_DELAY
            full_retry_at = retry_at if schedule.next_full_at is not None else None
            return _Plan(
                None, ScheduleUpdate(schedule.connection_id, schedule.entity, retry_at, full_retry_at)
            )
        capabilities = entities.get(schedule.entity)
        if capabilities is None:
            return _Plan(None, None)
        settings = self._settings[schedule.connection_id]
        return plan_schedule(schedule, capabilities, settings, runs, now=now, rng=rng)

    def scheduled_entities(self) -> dict[str, dict[str, EntityCapabilities]]:
        """Return the scheduled entities of each planned connection whose settings could be read."""
        return {
            connection_id: entities
            for connection_id, entities in self._entities.items()
            if entities is not None
        }

    def settings(self, connection_id: str) -> ConnectionSettings:
        return self._settings[connection_id]

    def _scheduled(self, item: ClaimedSchedule) -> dict[str, EntityCapabilities] | None:
        connection_id = item.schedule.connection_id
        if connection_id in self._entities:
            return self._entities[connection_id]
        integration = self._integration_lookup(item.integration)
        entities: dict[str, EntityCapabilities] | None = None
        if integration is None:
            logger.warning(
                "sync.schedule.integration_missing connection_id=%s integration=%s",
                connection_id,
                item.integration,
            )
        else:
            try:
                settings = ConnectionSettings.model_validate(item.settings)
            except ValidationError as exc:
                logger.warning("sync.schedule.settings_invalid connection_id=%s error=%s", connection_id, exc)
            else:
                self._settings[connection_id] = settings
                entities = {c.entity: c for c in scheduled_entities(integration, settings)}
        self._entities[connection_id] = entities
        return entities
