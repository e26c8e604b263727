"""The health monitor: a periodic cheap authenticated check of every connection.

Each connection is checked with its connector's ``check()`` about every
``CHECK_INTERVAL``, at a jittered time, unless it is disabled, needs
reauthorization, or a sync run succeeded since the last check (that run
proved the connection healthy). The state lives in the ``connection_health``
table, so several processes share the work and a restart loses nothing.

A check moves the connection between statuses, and ``transition_status``
emits one event per transition, never one per failed check:

- an ``AuthenticationError`` moves it to ``reauthorization_required`` at once;
- another final error (permission missing, request rejected, unusable
  response) moves it to ``degraded`` at once, since retrying cannot help;
- a retryable error (unreachable, timeout, rate limited) moves it to
  ``degraded`` only after ``FAILURE_THRESHOLD`` failed checks in a row, or
  after failing for ``FAILURE_WINDOW``, whichever comes first;
- a success moves a ``degraded`` connection back to ``active``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from interlink.connectors.base import ConnectorContext, Integration
from interlink.connectors.errors import AuthenticationError, ConnectorError, RetryableError
from interlink.connectors.http import create_client
from interlink.connectors.registry import get_integration
from interlink.crypto import CredentialBox, SecretKeyError
from interlink.store import Database
from interlink.store.connections import get_connection, transition_status, update_connection
from interlink.store.health import (
    CHECKED_STATUSES,
    ClaimedCheck,
    HealthRow,
    claim_due_checks,
    connections_without_health,
    insert_health_rows,
    last_sync_successes,
    lock_connection_status,
    record_check,
    reschedule_check,
)
from interlink.sync.engine import Clock, HttpFactory

logger = logging.getLogger(__name__)

CHECK_INTERVAL = timedelta(minutes=15)
# Each next check time is moved by a random part of up to this fraction of the interval.
JITTER_FRACTION = 0.1
FAILURE_THRESHOLD = 3
FAILURE_WINDOW = timedelta(minutes=30)
# A check that takes longer fails with reason code "timeout".
CHECK_TIMEOUT = timedelta(seconds=60)
# A claimed check whose result was not recorded within this time is due again.
CLAIM_PERIOD = timedelta(minutes=5)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: success, or the reason code and message of its failure."""

    ok: bool
    error_code: str | None = None
    error: str | None = None
    # "reauthorization_required" or "degraded": the status this failure leads to at once.
    immediate_status: str | None = None
    # Whether the failure counts towards the threshold of repeated failures.
    counts_towards_threshold: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one tick for one connection."""

    connection_id: str
    checked: bool  # False when a recent successful sync made the check unnecessary
    ok: bool
    error_code: str | None
    # The connection's status after the check; None when the check was skipped or the connection is gone.
    status: str | None
    status_changed: bool


class HealthMonitor:
    """Checks due connections at a fixed interval and moves them between statuses."""

    def __init__(
        self,
        db: Database,
        credentials: CredentialBox,
        *,
        clock: Clock,
        http_factory: HttpFactory = create_client,
        integration_lookup: Callable[[str], Integration | None] = get_integration,
        check_interval: timedelta = CHECK_INTERVAL,
        failure_threshold: int = FAILURE_THRESHOLD,
        failure_window: timedelta = FAILURE_WINDOW,
        check_timeout: timedelta = CHECK_TIMEOUT,
        tick_seconds: float = 30.0,
        batch: int = 50,
        max_batches: int = 20,
        concurrency: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._credentials = credentials
        self._clock = clock
        self._http_factory = http_factory
        self._integration_lookup = integration_lookup
        self._interval = check_interval
        self._threshold = failure_threshold
        self._window = failure_window
        self._check_timeout = check_timeout
        self._tick_seconds = tick_seconds
        self._batch = batch
        self._max_batches = max_batches
        self._limit = asyncio.Semaphore(concurrency)
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> list[CheckOutcome]:
        """Create missing health rows, run the due checks, and return what happened per connection."""
        await self._create_missing_rows()
        outcomes: list[CheckOutcome] = []
        for _ in range(self._max_batches):
            now = self._clock()
            async with self._db.write() as db:
                claimed = await claim_due_checks(
                    db, now=now, claim_until=now + CLAIM_PERIOD, limit=self._batch
                )
                proven = await last_sync_successes(db, [item.health.connection_id for item in claimed])
            outcomes += await asyncio.gather(*(self._handle(item, proven) for item in claimed))
            if len(claimed) < self._batch:
                break
        return outcomes

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="health-monitor")
        logger.info(
            "health.monitor.started interval_s=%d threshold=%d",
            self._interval.total_seconds(),
            self._threshold,
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            logger.info("health.monitor.stopped")

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("health.monitor.tick_failed")
            await asyncio.sleep(self._tick_seconds)

    async def _create_missing_rows(self) -> None:
        async with self._db.read() as db:
            missing = await connections_without_health(db, limit=self._batch * self._max_batches)
        if not missing:
            return
        now = self._clock()
        # A first check at a random point of the interval spreads connections made together.
        first_checks = [
            (connection_id, now + self._interval * self._rng.random()) for connection_id in missing
        ]
        async with self._db.write() as db:
            await insert_health_rows(db, first_checks, now=now)

    def _next_check_at(self, now: datetime) -> datetime:
        jitter = (2 * self._rng.random() - 1) * JITTER_FRACTION
        return now + self._interval * (1 + jitter)

    async def _handle(self, item: ClaimedCheck, proven: Mapping[str, datetime]) -> CheckOutcome:
        health = item.health
        connection_id = health.connection_id
        synced_at = proven.get(connection_id)
        now = self._clock()
        if _sync_proved_health(health, synced_at, now=now, interval=self._interval):
            async with self._db.write() as db:
                await reschedule_check(
                    db,
                    connection_id,
                    now=now,
                    next_check_at=self._next_check_at(now),
                    clear_failures=health.consecutive_failures > 0,
                )
            logger.debug("health.check.skipped connection_id=%s reason=recent_sync", connection_id)
            return CheckOutcome(connection_id, False, True, None, None, False)

        async with self._limit:
            result = await self._check(item)
        return await self._record(connection_id, result)

    async def _check(self, item: ClaimedCheck) -> CheckResult:
        connection_id = item.health.connection_id
        integration = self._integration_lookup(item.integration)
        if integration is None:
            logger.warning(
                "health.check.integration_missing connection_id=%s integration=%s",
                connection_id,
                item.integration,
            )
            message = f"integration {item.integration!r} is not installed"
            return CheckResult(False, "integration_missing", message)
        try:
            credentials = self._credentials.decrypt(item.credentials)
        except SecretKeyError as exc:
            logger.error("health.check.decrypt_failed connection_id=%s error=%s", connection_id, exc)
            return CheckResult(False, "secret_key_invalid", str(exc))

        try:
            async with self._http_factory() as http:
                connector = integration.build(
                    ConnectorContext(
                        connection_id=connection_id,
                        auth_scheme=item.auth_scheme,
                        credentials=credentials,
                        http=http,
                        save_credentials=lambda values: self._save_credentials(connection_id, values),
                    )
                )
                async with asyncio.timeout(self._check_timeout.total_seconds()):
                    await connector.check()
        except AuthenticationError as exc:
            return CheckResult(False, exc.reason_code, str(exc), immediate_status="reauthorization_required")
        except RetryableError as exc:
            return CheckResult(False, exc.reason_code, str(exc), counts_towards_threshold=True)
        except TimeoutError:
            message = f"the check did not finish within {self._check_timeout.total_seconds():g} s"
            return CheckResult(False, "timeout", message, counts_towards_threshold=True)
        except ConnectorError as exc:
            return CheckResult(False, exc.reason_code, str(exc), immediate_status="degraded")
        except Exception:
            logger.exception("health.check.crashed connection_id=%s", connection_id)
            return CheckResult(False, "internal_error", "internal error in Interlink; see the server log")
        return CheckResult(True)

    async def _record(self, connection_id: str, result: CheckResult) -> CheckOutcome:
        now = self._clock()
        async with self._db.write() as db:
            health = await record_check(
                db,
                connection_id,
                now=now,
                ok=result.ok,
                error_code=result.error_code,
                error=result.error,
                next_check_at=self._next_check_at(now),
            )
            status = await lock_connection_status(db, connection_id)
            if health is None or status is None:
                return CheckOutcome(connection_id, True, result.ok, result.error_code, None, False)
            target = self._target_status(status, result, health, now=now)
            changed = False
            if target is not None:
                changed = await transition_status(
                    db, connection_id, target, reason=result.error_code, detail=result.error
                )
                status = target
        self._log(connection_id, result, health, status, changed)
        return CheckOutcome(connection_id, True, result.ok, result.error_code, status, changed)

    def _target_status(
        self, status: str, result: CheckResult, health: HealthRow, *, now: datetime
    ) -> str | None:
        """Return the status the check result leads to, or ``None`` to leave the status alone."""
        if status not in CHECKED_STATUSES:
            return None  # disabled or reauthorization required since the claim
        if result.ok:
            return "active" if status == "degraded" else None
        if result.immediate_status is not None:
            return result.immediate_status
        if not result.counts_towards_threshold:
            return None
        failing_for = now - health.failing_since if health.failing_since else timedelta(0)
        if health.consecutive_failures >= self._threshold or failing_for >= self._window:
            return "degraded"
        return None

    def _log(
        self, connection_id: str, result: CheckResult, health: HealthRow, status: str, changed: bool
    ) -> None:
        if changed:
            logger.warning(
                "health.status_changed connection_id=%s status=%s reason=%s",
                connection_id,
                status,
                result.error_code,
            )
        if result.ok:
            logger.debug("health.check.succeeded connection_id=%s", connection_id)
            return
        logger.info(
            "health.check.failed connection_id=%s code=%s failures=%d error=%s",
            connection_id,
            result.error_code,
            health.consecutive_failures,
            result.error,
        )

    async def _save_credentials(self, connection_id: str, values: Mapping[str, str]) -> None:
        """Store credentials the connector renewed during the check, such as a rotated refresh token."""
        async with self._db.write() as db:
            connection = await get_connection(db, connection_id)
            if connection is None:
                return
            merged = {**self._credentials.decrypt(connection.credentials), **values}
            await update_connection(db, connection_id, credentials=self._credentials.encrypt(merged))


def _sync_proved_health(
    health: HealthRow, synced_at: datetime | None, *, now: datetime, interval: timedelta
) -> bool:
    """Return whether a sync run succeeded within the last interval and after the last check."""
    if synced_at is None or synced_at <= now - interval:
        return False
    return health.last_check_at is None or synced_at > health.last_check_at
