"""The sync engine: read pages from a connector, store them, checkpoint, reconcile.

``SyncEngine.execute_run`` is the one function that executes a run, whichever
dispatcher delivered its id. It takes the run's lease in the database, so a
run delivered twice, or to two workers, executes once. Every page and the
cursor after it are committed in one transaction, so a crash resumes from
the last committed page.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from interlink.connectors.base import ConnectorContext, Integration, Page, ReadWindow, SourceRecord
from interlink.connectors.errors import AuthenticationError, ConnectorError, RetryableError
from interlink.connectors.http import create_client
from interlink.connectors.registry import get_integration
from interlink.crypto import CredentialBox
from interlink.errors import InterlinkError
from interlink.model import ConnectionSettings
from interlink.store import Database
from interlink.store.connections import ConnectionRow, get_connection, transition_status, update_connection
from interlink.store.cursors import encode_cursor
from interlink.store.events import append_event
from interlink.store.records import (
    PreparedRecord,
    RecordFilter,
    UpsertCounts,
    forget_seen,
    mark_unseen_deleted,
    position_before,
    record_filter_key,
    remember_seen,
    upsert_page,
)
from interlink.store.runs import (
    RunRow,
    claim_run,
    extend_lease,
    finish_run,
    get_run,
    get_sync_state,
    save_sync_state,
    waiting_run,
)
from interlink.sync.prepare import prepare_record

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
HttpFactory = Callable[[], httpx.AsyncClient]
ProgressCallback = Callable[[RunRow, Mapping[str, int]], None]


# Records prepared between two turns of the event loop. Each turn lets the previous page's commit
# send its next statement, so the database works while this page is prepared.
_PREPARE_BATCH = 100


class _ReadAhead:
    """Iterate prepared pages, reading and preparing the next one in a task while the engine stores one.

    The connector fetches and maps page n + 1, and ``prepare`` serializes
    and hashes its records, while the engine stores page n. The engine calls
    ``start`` once page n's rows are on their way to the database, so the
    Python work of page n + 1 runs while the database writes page n (SQLite
    writes in a thread of its own), and the source's latency hides behind
    both. ``aclose`` cancels and awaits that task and closes the connector's
    iterator, so no read outlives the run.
    """

    def __init__(self, pages: AsyncIterator[Page], prepare: Callable[[SourceRecord], PreparedRecord]) -> None:
        self._pages = pages
        self._prepare = prepare
        self._next: asyncio.Future[tuple[Page, list[PreparedRecord]]] | None = None

    def __aiter__(self) -> _ReadAhead:
        return self

    def start(self) -> None:
        """Start reading the next page, unless the read has already begun."""
        if self._next is None:
            self._next = asyncio.ensure_future(self._read())

    async def __anext__(self) -> tuple[Page, list[PreparedRecord]]:
        self.start()
        assert self._next is not None
        try:
            return await self._next  # StopAsyncIteration ends the iteration here
        finally:
            self._next = None

    async def _read(self) -> tuple[Page, list[PreparedRecord]]:
        page = await anext(self._pages)
        prepared: list[PreparedRecord] = []
        for start in range(0, len(page.records), _PREPARE_BATCH):
            if start:
                await asyncio.sleep(0)
            batch = page.records[start : start + _PREPARE_BATCH]
            prepared.extend([self._prepare(record) for record in batch])
        return page, prepared

    async def aclose(self) -> None:
        if self._next is not None:
            self._next.cancel()
            # The page it read, or the error it raised, no longer matters: the run has stopped.
            with suppress(asyncio.CancelledError, Exception):
                await self._next
        aclose = getattr(self._pages, "aclose", None)
        if aclose is not None:
            await aclose()


def utcnow() -> datetime:
    return datetime.now(UTC)


class LeaseLost(InterlinkError):
    """Another worker took over the run, so this one must stop without writing."""


class RunAborted(InterlinkError):
    """The run cannot start, for a reason a person can act on."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Progress:
    counts: dict[str, int]
    first_change_seq: int | None = None
    cursor: str | None = None
    complete: bool = False
    changed: int = 0


@dataclass
class SyncEngine:
    """Executes sync runs against the store."""

    db: Database
    credentials: CredentialBox
    lease: timedelta = timedelta(seconds=60)
    clock: Clock = utcnow
    http_factory: HttpFactory = create_client
    integration_lookup: Callable[[str], Integration | None] = get_integration
    # Called with the id of a run that may start now that the previous run of its pair finished.
    on_run_waiting: Callable[[str], Awaitable[None]] | None = None
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{id(object())}")

    async def execute_run(self, run_id: str, *, progress: ProgressCallback | None = None) -> RunRow | None:
        """Execute one run to its end; return it, or ``None`` when it was not ours to execute."""
        claimed = await self._claim(run_id)
        if claimed is None:
            logger.debug("sync.run.skipped run_id=%s", run_id)
            return None
        run, connection = claimed
        logger.info(
            "sync.run.started run_id=%s connection_id=%s entity=%s mode=%s attempt=%d",
            run.id,
            run.connection_id,
            run.entity,
            run.mode,
            run.attempts,
        )
        state = _Progress(counts=run.counts)
        try:
            async with self._heartbeat(run, state):
                await self._sync(run, connection, state, progress)
            await self._succeed(run, state)
        except LeaseLost:
            logger.warning("sync.run.lease_lost run_id=%s", run.id)
            return await self._reload(run.id)
        except RunAborted as exc:
            await self._fail(run, state, str(exc), exc.code)
        except AuthenticationError as exc:
            await self._fail(run, state, str(exc), exc.reason_code, status="reauthorization_required")
        except RetryableError as exc:
            await self._fail(run, state, f"{exc} (retries exhausted)", exc.reason_code, status="degraded")
        except ConnectorError as exc:
            await self._fail(run, state, str(exc), exc.reason_code)
        except Exception:
            logger.exception("sync.run.crashed run_id=%s connection_id=%s", run.id, run.connection_id)
            await self._fail(run, state, "internal error in Interlink; see the server log", "internal_error")
        await self._release_waiting(run)
        return await self._reload(run.id)

    async def _claim(self, run_id: str) -> tuple[RunRow, ConnectionRow] | None:
        now = self.clock()
        async with self.db.write() as db:
            run = await claim_run(db, run_id, owner=self.owner, now=now, lease_until=now + self.lease)
            if run is None:
                return None
            connection = await get_connection(db, run.connection_id)
            if connection is None:
                return None  # deleted with its runs while this one waited
            if run.attempts == 1:
                await append_event(
                    db,
                    "sync.started",
                    {"run_id": run.id, "entity": run.entity, "mode": run.mode, "trigger": run.trigger},
                    connection_id=run.connection_id,
                )
        return run, connection

    async def _sync(
        self, run: RunRow, connection: ConnectionRow, state: _Progress, progress: ProgressCallback | None
    ) -> None:
        if connection.status in ("disabled", "reauthorization_required"):
            raise RunAborted(
                f"connection {connection.id} is {connection.status}; "
                + (
                    "enable it again"
                    if connection.status == "disabled"
                    else "reconnect it with new credentials"
                ),
                f"connection_{connection.status}",
            )
        integration = self.integration_lookup(connection.integration)
        if integration is None:
            raise RunAborted(
                f"integration {connection.integration!r} is not installed", "integration_missing"
            )
        settings = ConnectionSettings.model_validate(connection.settings)
        window = ReadWindow(
            mode="full" if run.mode == "full" else "incremental",
            history_start=self.clock() - timedelta(days=settings.history_days),
        )
        cursor = run.full_cursor if run.mode == "full" else await self._stored_cursor(run)

        async with self.http_factory() as http:
            context = ConnectorContext(
                connection_id=connection.id,
                auth_scheme=connection.auth_scheme,
                credentials=self.credentials.decrypt(connection.credentials),
                http=http,
                save_credentials=lambda values: self._save_credentials(connection.id, values),
            )
            reader = integration.build(context).reader(run.entity)
            pages = _ReadAhead(
                reader.read(cursor, window),
                functools.partial(self._prepare, connection.id, integration, run.entity),
            )
            try:
                async for page, prepared in pages:
                    commit = self._commit_page(run, prepared, page.cursor, state, pages.start)
                    await self._commit_to_end(run, commit)
                    state.cursor = page.cursor
                    state.complete = page.complete
                    if progress is not None:
                        progress(run, state.counts)
            finally:
                await pages.aclose()

    async def _stored_cursor(self, run: RunRow) -> str | None:
        async with self.db.read() as db:
            sync_state = await get_sync_state(db, run.connection_id, run.entity)
        return sync_state.cursor if sync_state else None

    def _prepare(
        self, connection_id: str, integration: Integration, entity: str, record: SourceRecord
    ) -> PreparedRecord:
        return prepare_record(connection_id, integration, entity, record)

    async def _commit_to_end(self, run: RunRow, page_commit: Coroutine[Any, Any, None]) -> None:
        """Run a page's commit, and let a cancellation that arrives meanwhile wait for the commit to end.

        The next page is being read while this one commits, so a run stopped
        at any moment ends after a whole page: the pages committed before the
        stop are exactly the ones stored. A second cancellation abandons the
        commit, and its transaction rolls back.
        """
        commit = asyncio.ensure_future(page_commit)
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            if not commit.done():
                try:
                    await commit
                except asyncio.CancelledError:
                    commit.cancel()
                    raise
                except Exception as exc:
                    # The page rolled back; the caller sees the cancellation it asked for.
                    logger.warning("sync.page.failed_while_stopping run_id=%s error=%s", run.id, exc)
            raise

    async def _commit_page(
        self,
        run: RunRow,
        prepared: list[PreparedRecord],
        cursor: str | None,
        state: _Progress,
        read_next: Callable[[], None],
    ) -> None:
        now = self.clock()
        counts = dict(state.counts)

        async with self.db.write() as db:

            async def record_progress(page_counts: UpsertCounts) -> None:
                # Awaited before the page's rows are written. The next page is mapped while they are,
                # and statements sent then would wait behind that work, so COMMIT follows the rows.
                counts["fetched"] += len(prepared)
                for name in ("created", "updated", "unchanged", "deleted"):
                    counts[name] += getattr(page_counts, name)
                if run.mode == "full":
                    await remember_seen(db, run.id, [record.remote_id for record in prepared])
                else:
                    await save_sync_state(db, run.connection_id, run.entity, now=now, cursor=cursor)
                owned = await extend_lease(
                    db,
                    run.id,
                    owner=self.owner,
                    lease_until=now + self.lease,
                    counts=counts,
                    full_cursor=cursor if run.mode == "full" else None,
                )
                if not owned:
                    raise LeaseLost(run.id)  # rolls the page back

            page_counts = await upsert_page(
                db,
                connection_id=run.connection_id,
                entity=run.entity,
                page=prepared,
                now=now,
                counted=record_progress,
                sending=read_next,
            )
            read_next()  # a page with nothing to write never called it
        state.counts = counts
        state.changed += page_counts.changed
        if state.first_change_seq is None:
            state.first_change_seq = page_counts.change_seq

    async def _succeed(self, run: RunRow, state: _Progress) -> None:
        now = self.clock()
        async with self.db.write() as db:
            if run.mode == "full" and state.complete:
                connection = await get_connection(db, run.connection_id)
                assert connection is not None
                settings = ConnectionSettings.model_validate(connection.settings)
                latest = await get_run(db, run.id)
                assert latest is not None
                assert latest.started_at is not None
                deleted = await mark_unseen_deleted(
                    db,
                    connection_id=run.connection_id,
                    entity=run.entity,
                    run_id=run.id,
                    pass_started_at=latest.started_at,
                    history_start=latest.started_at - timedelta(days=settings.history_days),
                    now=now,
                )
                state.counts["deleted"] += deleted
                state.changed += deleted
            if run.mode == "full":
                await forget_seen(db, run.id)
            await save_sync_state(
                db,
                run.connection_id,
                run.entity,
                now=now,
                cursor=state.cursor,
                succeeded=True,
                full=run.mode == "full" and state.complete,
            )
            if not await finish_run(
                db, run.id, owner=self.owner, status="succeeded", now=now, counts=state.counts
            ):
                raise LeaseLost(run.id)
            await self._append_completion_events(db, run, state)
            await transition_status(db, run.connection_id, "active")
        logger.info("sync.run.succeeded run_id=%s counts=%s", run.id, state.counts)

    async def _append_completion_events(self, db: Any, run: RunRow, state: _Progress) -> None:
        await append_event(
            db,
            "sync.completed",
            {"run_id": run.id, "entity": run.entity, "mode": run.mode, "counts": state.counts},
            connection_id=run.connection_id,
        )
        if state.changed and state.first_change_seq is not None:
            record_filter = RecordFilter(
                entity=run.entity, connection_id=run.connection_id, include_deleted=True
            )
            cursor = encode_cursor(position_before(state.first_change_seq), record_filter_key(record_filter))
            counts = {name: state.counts[name] for name in ("created", "updated", "deleted")}
            await append_event(
                db,
                "records.changed",
                {
                    "run_id": run.id,
                    "entities": {run.entity: {"count": state.changed, "counts": counts, "cursor": cursor}},
                },
                connection_id=run.connection_id,
            )

    async def _fail(
        self, run: RunRow, state: _Progress, reason: str, code: str, *, status: str | None = None
    ) -> None:
        logger.warning(
            "sync.run.failed run_id=%s connection_id=%s code=%s error=%s",
            run.id,
            run.connection_id,
            code,
            reason,
        )
        now = self.clock()
        async with self.db.write() as db:
            finished = await finish_run(
                db,
                run.id,
                owner=self.owner,
                status="failed",
                now=now,
                counts=state.counts,
                error=reason,
                error_code=code,
            )
            if not finished:
                return
            if run.mode == "full":
                await forget_seen(db, run.id)
            await append_event(
                db,
                "sync.failed",
                {
                    "run_id": run.id,
                    "entity": run.entity,
                    "mode": run.mode,
                    "error": reason,
                    "error_code": code,
                },
                connection_id=run.connection_id,
            )
            if status is not None:
                await transition_status(db, run.connection_id, status, reason=code, detail=reason)

    async def _release_waiting(self, run: RunRow) -> None:
        if self.on_run_waiting is None:
            return
        async with self.db.read() as db:
            next_run = await waiting_run(db, run.connection_id, run.entity)
        if next_run is not None:
            await self.on_run_waiting(next_run)

    async def _reload(self, run_id: str) -> RunRow | None:
        async with self.db.read() as db:
            return await get_run(db, run_id)

    async def _save_credentials(self, connection_id: str, values: Mapping[str, str]) -> None:
        """Store refreshed credentials (a renewed token, say) before the connector uses them."""
        async with self.db.write() as db:
            connection = await get_connection(db, connection_id)
            if connection is None:
                return
            merged = {**self.credentials.decrypt(connection.credentials), **values}
            await update_connection(db, connection_id, credentials=self.credentials.encrypt(merged))

    @asynccontextmanager
    async def _heartbeat(self, run: RunRow, state: _Progress) -> AsyncIterator[None]:
        """Renew the lease in the background while a slow page is being read."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease.total_seconds() / 3)
                now = self.clock()
                async with self.db.write() as db:
                    if not await extend_lease(db, run.id, owner=self.owner, lease_until=now + self.lease):
                        logger.warning("sync.run.heartbeat_lost run_id=%s", run.id)
                        return

        task = asyncio.create_task(renew(), name=f"heartbeat-{run.id}")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
