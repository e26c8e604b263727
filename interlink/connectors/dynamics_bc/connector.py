"""Business Central readers: vendors, items (parts), locations and purchase orders with lines.

Incremental reads filter on ``lastModifiedDateTime ge`` the high-water mark
minus the integration's lookback; full reads filter on the window's start and
set ``complete`` on their last page. Purchase orders also sweep their lines
(see ``lines.py``), because a line edit need not move its order's timestamp.
A full read sweeps them or folds their digests from the orders it reads. An
incremental read sweeps when the last sweep began
``Tuning.line_sweep_interval`` ago or more (one hour unless set otherwise).
So an order whose lines alone changed is read again within that interval
after the change, and at the next full read at the latest.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from interlink.connectors.base import (
    ConnectorContext,
    EntityReader,
    EntityWriter,
    Page,
    ReadWindow,
    SourceRecord,
)
from interlink.connectors.dynamics_bc.client import OAUTH_SCOPE, BusinessCentralClient, ODataPage, Tuning
from interlink.connectors.dynamics_bc.cursor import Cursor, final_mark, later
from interlink.connectors.dynamics_bc.lines import LINE_FIELDS, LineDigests
from interlink.connectors.dynamics_bc.mapping import (
    RefMaker,
    map_item,
    map_location,
    map_purchase_order,
    map_vendor,
    parse_time,
    ref_maker,
)
from interlink.connectors.errors import SourceRejected
from interlink.connectors.oauth import OAuthSession
from interlink.model import EntityData

logger = logging.getLogger(__name__)

Mapper = Callable[[Mapping[str, Any], RefMaker], EntityData]
# Orders read again after a line sweep are fetched this many per request (``id eq ... or ...``).
REREAD_CHUNK = 15

ENTITY_SETS: dict[str, tuple[str, Mapper]] = {
    "vendor": ("vendors", lambda raw, make_ref: map_vendor(raw)),
    "part": ("items", lambda raw, make_ref: map_item(raw)),
    "location": ("locations", lambda raw, make_ref: map_location(raw)),
    "purchase_order": ("purchaseOrders", map_purchase_order),
}


def odata_time(value: datetime) -> str:
    """Format a time as an OData v4 date-time literal in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class BusinessCentralConnector:
    def __init__(self, context: ConnectorContext, tuning: Tuning, lookback: timedelta) -> None:
        oauth = None
        if context.auth_scheme == "oauth":
            oauth = OAuthSession(
                context.http,
                context.credentials,
                connection_id=context.connection_id,
                scope=OAUTH_SCOPE,
                save_credentials=context.save_credentials,
                request_timeout=tuning.request_timeout,
            )
        self.client = BusinessCentralClient(
            context.http,
            context.credentials,
            tuning=tuning,
            save_credentials=context.save_credentials,
            oauth=oauth,
        )
        self.make_ref = ref_maker(context.connection_id)
        self.lookback = lookback

    async def check(self) -> None:
        await self.client.company_url()

    def reader(self, entity: str) -> EntityReader:
        if entity not in ENTITY_SETS:
            raise SourceRejected(
                f"entity {entity!r} is not read from Business Central; valid: {', '.join(ENTITY_SETS)}"
            )
        entity_set, mapper = ENTITY_SETS[entity]
        if entity == "purchase_order":
            return PurchaseOrderReader(self, entity_set, mapper)
        return CollectionReader(self, entity_set, mapper)

    def writer(self, entity: str) -> EntityWriter | None:
        return None


class CollectionReader:
    """Reads one entity set by ``lastModifiedDateTime``."""

    def __init__(self, connector: BusinessCentralConnector, entity_set: str, mapper: Mapper) -> None:
        self.client = connector.client
        self.make_ref = connector.make_ref
        self.lookback = connector.lookback
        self.entity_set = entity_set
        self.mapper = mapper

    def params(self, since: datetime) -> dict[str, str]:
        return {"$filter": f"lastModifiedDateTime ge {odata_time(since)}"}

    def since(self, cursor: Cursor, window: ReadWindow) -> datetime:
        if window.mode == "incremental" and cursor.high_water_mark is not None:
            return cursor.high_water_mark - self.lookback
        return window.history_start

    def to_record(self, raw: Mapping[str, Any]) -> SourceRecord:
        changed = parse_time(raw.get("lastModifiedDateTime"))
        return SourceRecord(
            remote_id=str(raw["id"]),
            data=self.mapper(raw, self.make_ref),
            raw=dict(raw),
            remote_updated_at=changed,
        )

    async def source_pages(self, cursor: Cursor, window: ReadWindow) -> AsyncIterator[ODataPage]:
        if window.mode == "full" and cursor.next_link:
            async for page in self.client.pages(cursor.next_link):
                yield page
            return
        url = f"{await self.client.company_url()}/{self.entity_set}"
        async for page in self.client.pages(url, self.params(self.since(cursor, window))):
            yield page

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        state = Cursor.decode(cursor)
        resuming = window.mode == "full" and state.next_link is not None
        latest = state.high_water_mark if resuming else None
        started = state.started_at if resuming else None
        previous = None if window.mode == "full" else state.high_water_mark
        logger.info(
            "dynamics_bc.read.started entity_set=%s mode=%s resuming=%s",
            self.entity_set,
            window.mode,
            resuming,
        )
        async for page in self.source_pages(state, window):
            started = started or page.answered_at
            records = [self.to_record(raw) for raw in page.records]
            for record in records:
                latest = later(latest, record.remote_updated_at)
            if page.next_link is not None:
                middle = Cursor(latest, None, page.next_link, started) if window.mode == "full" else state
                yield Page(records, middle.encode() if middle != Cursor() else cursor)
                continue
            final = Cursor(final_mark(latest, started, previous))
            yield Page(records, final.encode(), complete=window.mode == "full")


class PurchaseOrderReader(CollectionReader):
    """Reads purchase orders with their lines and catches line-only changes with a line sweep."""

    def params(self, since: datetime) -> dict[str, str]:
        return {**super().params(since), "$expand": "purchaseOrderLines"}

    async def sweep(self) -> LineDigests:
        digests = LineDigests()
        url = f"{await self.client.company_url()}/purchaseOrderLines"
        async for page in self.client.pages(url, {"$select": ",".join(LINE_FIELDS)}):
            for line in page.records:
                digests.add(line)
        return digests

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        if window.mode == "full":
            async for page in self.read_full(cursor, window):
                yield page
            return
        async for page in self.read_incremental(cursor, window):
            yield page

    async def read_full(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        """Read every order of the window, with line digests that are never newer than the stored orders.

        When no order changed last before the window's start, the read gets
        every line, expanded in its order, and folds the digests from those
        very lines. Otherwise it sweeps all lines first, so that a line that
        changes after the sweep read it still shows in the next sweep's
        digests, even if its order was read after the change. The digests
        ride in every cursor of the read, so a read resumed after a crash
        keeps them.
        """
        state = Cursor.decode(cursor)
        if state.next_link is not None and state.lines is not None:
            lines, swept_at, folding = state.lines, state.swept_at, state.partial_lines
        else:
            swept_at = self.client.tuning.clock()
            folding = await self.window_holds_every_order(window)
            if folding:
                lines = LineDigests().encode()
            else:
                swept = await self.sweep()
                lines = swept.encode(swept.fitting_size())
        digests = LineDigests.decode(lines) if folding else None
        async for page in super().read(cursor, window):
            if digests is not None:
                for record in page.records:
                    for line in record.raw.get("purchaseOrderLines") or ():
                        digests.add(line)
                # Mid-read, the digests keep every bucket, so a resumed read can go on adding.
                lines = digests.encode(digests.fitting_size() if page.complete else None)
            position = Cursor.decode(page.cursor)
            position = replace(
                position, lines=lines, swept_at=swept_at, partial_lines=folding and not page.complete
            )
            yield Page(page.records, position.encode(), complete=page.complete)

    async def window_holds_every_order(self, window: ReadWindow) -> bool:
        """Return whether no order's last change lies before the window's start.

        Then a full read of the window reads every order with its lines. An
        order's change time only moves forward, so no order leaves the
        window while the read runs.
        """
        url = f"{await self.client.company_url()}/{self.entity_set}"
        before = {
            "$filter": f"lastModifiedDateTime lt {odata_time(window.history_start)}",
            "$top": "1",
            "$select": "id",
        }
        async for page in self.client.pages(url, before):
            return not page.records
        return True

    async def read_incremental(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        state = Cursor.decode(cursor)
        emitted: set[str] = set()
        final = state
        async for page in super().read(cursor, window):
            emitted.update(record.remote_id for record in page.records)
            if page.cursor is not None and page.cursor != cursor:
                final = Cursor.decode(page.cursor)
            yield Page(page.records, cursor)

        now = self.client.tuning.clock()
        if not self.sweep_due(state, now):
            yield Page([], Cursor(final.high_water_mark, state.lines, swept_at=state.swept_at).encode())
            return
        digests = await self.sweep()
        changed: set[str] = set()
        if state.lines is not None:
            try:
                changed = digests.orders_changed_since(LineDigests.decode(state.lines)) - emitted
            except ValueError:
                logger.warning("dynamics_bc.lines.invalid_digests action=rebuild")
        logger.info("dynamics_bc.lines.swept orders_to_reread=%d", len(changed))
        ordered = sorted(changed)
        for start in range(0, len(ordered), REREAD_CHUNK):
            chunk = ordered[start : start + REREAD_CHUNK]
            records = await self.fetch_orders(chunk)
            yield Page(records, cursor)
        lines = digests.encode(digests.fitting_size())
        yield Page([], Cursor(final.high_water_mark, lines, swept_at=now).encode())

    def sweep_due(self, state: Cursor, now: datetime) -> bool:
        """Sweep when no digests are stored yet, or the last sweep began a sweep interval ago or more."""
        if state.lines is None or state.swept_at is None:
            return True
        return now - state.swept_at >= self.client.tuning.line_sweep_interval

    async def fetch_orders(self, order_ids: list[str]) -> list[SourceRecord]:
        url = f"{await self.client.company_url()}/{self.entity_set}"
        condition = " or ".join(f"id eq {order_id}" for order_id in order_ids)
        records: list[SourceRecord] = []
        async for page in self.client.pages(url, {"$filter": condition, "$expand": "purchaseOrderLines"}):
            records.extend(self.to_record(raw) for raw in page.records)
        return records
