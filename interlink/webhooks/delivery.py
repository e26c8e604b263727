"""Delivering one event to one endpoint: ``WebhookDeliverer.deliver(delivery_id)``.

This is the one function that sends a webhook, whichever dispatcher handed
over the delivery id. It holds the delivery's lease in the database while it
sends, so an id handed over twice, or to two workers, is sent once. A worker
that dies mid-send leaves a lease that expires, and then the delivery is
sent again. Every attempt is signed anew with a fresh ``webhook-timestamp`` over
the same ``webhook-id`` (the event id) and the same body bytes.

Each endpoint kind has its own sender: HTTPS endpoints are sent here,
and other kinds by the ``Sender`` given for them (``MatrixTarget`` posts to
a Matrix room). Leases, the attempt log and the retry schedule are the
same for every kind.

Outcomes: a 2xx response within the timeout succeeds. 410 Gone disables the
endpoint. Anything else (another status, a timeout, a connection or TLS
error, a rejected address) is retried on the ``RetrySchedule``, no sooner
than the receiver's ``Retry-After``, and the delivery fails after the last
attempt. An endpoint whose attempts have all failed for ``disable_after``
is disabled, which emits ``webhook_endpoint.disabled``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.connectors.http import parse_retry_after, redact_url
from interlink.crypto import CredentialBox
from interlink.store import Database
from interlink.store.events import Event
from interlink.store.webhooks import (
    DeliveryJob,
    DeliveryRow,
    EndpointRow,
    FinishedAttempt,
    claim_delivery,
    disable_endpoint,
    finish_attempts,
    load_delivery,
    note_endpoint_failure,
    note_endpoint_success,
    release_delivery,
)
from interlink.webhooks.endpoints import signing_secrets
from interlink.webhooks.group_commit import GroupCommit
from interlink.webhooks.retry import RetrySchedule
from interlink.webhooks.signing import message_body, signed_headers
from interlink.webhooks.transport import DELIVERY_TIMEOUT_SECONDS, create_delivery_client
from interlink.webhooks.urls import UrlGuard, WebhookUrlRejected

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Seconds since the Unix epoch, as ``time.time`` returns them.
WallClock = Callable[[], float]

DEFAULT_LEASE = timedelta(seconds=60)
DEFAULT_DISABLE_AFTER = timedelta(days=5)
# The response body is read up to this size so the connection can be reused. It is never stored.
MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_LENGTH = 300


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AttemptResult:
    """The result of one attempt: an HTTP request, or a send of another endpoint kind."""

    status_code: int | None
    error: str | None
    latency_ms: int
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Sender(Protocol):
    """Sends one attempt of an event to an endpoint of one kind, other than HTTPS."""

    async def send(self, event: Event, endpoint: EndpointRow) -> AttemptResult:
        """Send the event once, and report every failure in the result instead of raising it."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class _Outcome:
    finished: FinishedAttempt
    endpoint: EndpointRow


@dataclass(frozen=True)
class DeliveryOutcome:
    """The state a delivery was left in by one call of ``deliver``."""

    delivery_id: str
    status: str
    attempt: int
    status_code: int | None
    error: str | None
    next_attempt_at: datetime | None


class WebhookDeliverer:
    """Sends deliveries under a database lease and records every attempt."""

    def __init__(
        self,
        db: Database,
        credentials: CredentialBox,
        *,
        guard: UrlGuard,
        ca_bundle: str | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Clock = utcnow,
        wall_clock: WallClock = time.time,
        schedule: RetrySchedule = RetrySchedule(),
        lease: timedelta = DEFAULT_LEASE,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
        disable_after: timedelta = DEFAULT_DISABLE_AFTER,
        owner: str | None = None,
        rng: random.Random | None = None,
        senders: Mapping[str, Sender] | None = None,
    ) -> None:
        """Build a deliverer.

        ``clock`` decides leases and retry times, so tests can advance it
        instead of sleeping. ``wall_clock`` stamps ``webhook-timestamp``,
        which receivers compare with their own clock, so it stays the real
        time unless a test replaces it too. ``senders`` maps each endpoint
        kind other than "https" to its sender.
        """
        if lease.total_seconds() <= timeout:
            raise ValueError(f"the lease ({lease}) must outlast the delivery timeout ({timeout} s)")
        self.db = db
        self.credentials = credentials
        self.guard = guard
        self._client = client
        self._ca_bundle = ca_bundle
        self.clock = clock
        self.wall_clock = wall_clock
        self.schedule = schedule
        self.lease = lease
        self.timeout = timeout
        self.disable_after = disable_after
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.rng = rng or random.Random()
        self.senders = dict(senders or {})
        # Outcomes of deliveries finishing together are committed in one transaction.
        self._outcomes: GroupCommit[_Outcome, bool] = GroupCommit(db, self._write_outcomes)

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client, created on first use so that a process that never delivers builds none."""
        if self._client is None:
            self._client = create_delivery_client(self.guard, ca_bundle=self._ca_bundle, timeout=self.timeout)
        return self._client

    def open(self) -> None:
        """Create the HTTP client now; raise ``ValueError`` when the CA bundle cannot be loaded."""
        _ = self.client

    async def aclose(self) -> None:
        await self._outcomes.wait_closed()
        for sender in self.senders.values():
            await sender.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, delivery_id: str, *, job: DeliveryJob | None = None) -> DeliveryOutcome | None:
        """Send one attempt of a due delivery; return its outcome, or ``None`` when it was not ours to send.

        Not ours: the delivery is finished, not due yet, gone with its
        endpoint, or leased by another live worker. ``job`` is the delivery
        as loaded when this worker leased it (``DeliveryWorker`` loads a batch
        at once); without it the delivery is loaded here.
        """
        claimed = await self._claim(delivery_id, job)
        if claimed is None:
            logger.debug("webhook.delivery.skipped delivery_id=%s", delivery_id)
            return None
        delivery, event, endpoint = claimed.delivery, claimed.event, claimed.endpoint
        if endpoint.status != "enabled":
            return await self._release_disabled(delivery, endpoint)

        attempt = delivery.attempts + 1
        result = await self._send_by_kind(event, endpoint)
        return await self._finish(delivery, endpoint, attempt, result)

    async def _send_by_kind(self, event: Event, endpoint: EndpointRow) -> AttemptResult:
        if endpoint.kind == "https":
            return await self._send(event, endpoint)
        sender = self.senders.get(endpoint.kind)
        if sender is None:
            return AttemptResult(
                None, f"this worker has no sender for endpoints of kind {endpoint.kind!r}", 0
            )
        return await sender.send(event, endpoint)

    async def _claim(self, delivery_id: str, job: DeliveryJob | None) -> DeliveryJob | None:
        """Load the delivery unless given, and make sure this worker holds its lease.

        A delivery leased to this worker by ``claim_due_deliveries`` needs no
        second write; any other due delivery is claimed here.
        """
        now = self.clock()
        if job is None or job.delivery.id != delivery_id:
            async with self.db.read() as connection:
                job = await load_delivery(connection, delivery_id)
        if job is None or job.delivery.status != "pending":
            return None
        delivery = job.delivery
        leased_to_us = (
            delivery.lease_owner == self.owner
            and delivery.lease_expires_at is not None
            and delivery.lease_expires_at > now
        )
        if not leased_to_us:
            async with self.db.write() as connection:
                if not await claim_delivery(
                    connection, delivery_id, owner=self.owner, now=now, lease_until=now + self.lease
                ):
                    return None
        return job

    async def _send(self, event: Event, endpoint: EndpointRow) -> AttemptResult:
        body = message_body(event)
        secrets = signing_secrets(self.credentials, endpoint, self.clock())
        headers = signed_headers(secrets, event.id, int(self.wall_clock()), body)
        started = time.monotonic()

        def result(
            status_code: int | None, error: str | None, retry_after: float | None = None
        ) -> AttemptResult:
            latency_ms = round((time.monotonic() - started) * 1000)
            return AttemptResult(status_code, shorten_error(error), latency_ms, retry_after)

        try:
            parsed = self.guard.parse(endpoint.url)
            request = self.client.build_request("POST", parsed.url, content=body, headers=headers)
            async with asyncio.timeout(self.timeout):
                response = await self.client.send(request, stream=True)
                try:
                    await _read_some(response)
                finally:
                    await response.aclose()
        except WebhookUrlRejected as exc:
            return result(None, f"URL rejected: {exc}")
        except (TimeoutError, httpx.TimeoutException):
            return result(None, f"timed out after {self.timeout:g} s")
        except httpx.ConnectError as exc:
            return result(None, _connect_error(exc))
        except httpx.HTTPError as exc:
            return result(None, f"{type(exc).__name__}: {exc}")

        status = response.status_code
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return result(status, error, parse_retry_after(response.headers.get("Retry-After")))

    async def _finish(
        self, delivery: DeliveryRow, endpoint: EndpointRow, attempt: int, result: AttemptResult
    ) -> DeliveryOutcome:
        now = self.clock()
        endpoint_gone = result.status_code == 410
        next_attempt_at: datetime | None = None
        if result.succeeded:
            status = "succeeded"
        elif endpoint_gone:
            status = "failed"
        else:
            next_attempt_at = self.schedule.next_attempt_at(
                attempt, now, retry_after=result.retry_after, rng=self.rng
            )
            status = "pending" if next_attempt_at is not None else "failed"

        finished = FinishedAttempt(
            delivery=delivery,
            attempt=attempt,
            attempted_at=now,
            status=status,
            next_attempt_at=next_attempt_at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            succeeded=result.succeeded,
        )
        if not await self._outcomes.submit(_Outcome(finished, endpoint)):
            logger.warning("webhook.delivery.lease_lost delivery_id=%s", delivery.id)
        self._log(delivery, endpoint, attempt, status, result, next_attempt_at)
        return DeliveryOutcome(
            delivery.id, status, attempt, result.status_code, result.error, next_attempt_at
        )

    async def _write_outcomes(self, connection: AsyncConnection, outcomes: Sequence[_Outcome]) -> list[bool]:
        """Store a batch of attempt outcomes; return, per outcome, whether this worker held the lease."""
        held = await finish_attempts(
            connection, [outcome.finished for outcome in outcomes], owner=self.owner, now=self.clock()
        )
        for outcome, owned in zip(outcomes, held, strict=True):
            if owned:
                await self._update_endpoint_health(connection, outcome)
        return held

    async def _update_endpoint_health(self, connection: AsyncConnection, outcome: _Outcome) -> None:
        """Track the endpoint's run of failures, and disable it on 410 Gone or after days of failures."""
        endpoint, finished = outcome.endpoint, outcome.finished
        if finished.succeeded:
            if endpoint.failing_since is not None:
                await note_endpoint_success(connection, endpoint.id)
        elif finished.status_code == 410:
            await self._disable(
                connection, endpoint, "endpoint_gone", "the endpoint answered 410 Gone", finished.attempted_at
            )
        else:
            failing_since = await note_endpoint_failure(connection, endpoint.id, now=finished.attempted_at)
            if finished.attempted_at - failing_since >= self.disable_after:
                detail = f"every attempt failed since {failing_since.isoformat()}"
                await self._disable(connection, endpoint, "failing", detail, finished.attempted_at)

    async def _disable(
        self, connection: AsyncConnection, endpoint: EndpointRow, reason: str, detail: str, now: datetime
    ) -> None:
        disabled = await disable_endpoint(
            connection,
            endpoint.id,
            reason=reason,
            detail=detail,
            url=redact_url(endpoint.url),
            now=now,
        )
        if disabled:
            logger.warning(
                "webhook.endpoint.disabled endpoint_id=%s reason=%s detail=%s", endpoint.id, reason, detail
            )

    async def _release_disabled(self, delivery: DeliveryRow, endpoint: EndpointRow) -> DeliveryOutcome:
        error = f"endpoint disabled ({endpoint.disabled_reason or 'no reason given'})"
        async with self.db.write() as connection:
            await release_delivery(
                connection, delivery.id, owner=self.owner, status="failed", error=error, now=self.clock()
            )
        logger.info(
            "webhook.delivery.dropped delivery_id=%s endpoint_id=%s error=%s", delivery.id, endpoint.id, error
        )
        return DeliveryOutcome(delivery.id, "failed", delivery.attempts, None, error, None)

    def _log(
        self,
        delivery: DeliveryRow,
        endpoint: EndpointRow,
        attempt: int,
        status: str,
        result: AttemptResult,
        next_attempt_at: datetime | None,
    ) -> None:
        if result.succeeded:
            logger.debug(
                "webhook.delivery.succeeded delivery_id=%s event_id=%s endpoint_id=%s attempt=%d "
                "status_code=%s latency_ms=%d",
                delivery.id,
                delivery.event_id,
                endpoint.id,
                attempt,
                result.status_code,
                result.latency_ms,
            )
            return
        logger.warning(
            "webhook.delivery.attempt_failed delivery_id=%s event_id=%s endpoint_id=%s attempt=%d "
            "status=%s error=%s next_attempt_at=%s",
            delivery.id,
            delivery.event_id,
            endpoint.id,
            attempt,
            status,
            result.error,
            next_attempt_at.isoformat() if next_attempt_at else None,
        )


async def _read_some(response: httpx.Response) -> None:
    """Read up to ``MAX_RESPONSE_BYTES`` of the response body and discard it."""
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received >= MAX_RESPONSE_BYTES:
            return


def _connect_error(exc: httpx.ConnectError) -> str:
    """Describe a failed connection, naming a TLS verification failure as such."""
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return f"connection failed: {exc or type(exc).__name__}"


def shorten_error(error: str | None) -> str | None:
    """Cut an error message to ``MAX_ERROR_LENGTH`` characters, the size of the attempt log's column."""
    if error is None or len(error) <= MAX_ERROR_LENGTH:
        return error
    return error[: MAX_ERROR_LENGTH - 3] + "..."
