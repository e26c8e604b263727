"""NetSuite readers: purchase orders with lines, vendors, inventory items (parts) and locations.

Listing and fetching are separate, as the REST API has them: a listing gives
ids, then one GET per record (``expandSubResources=true``) gives its fields.

- Incremental reads list with ``q=lastModifiedDate ON_OR_AFTER "M/D/YYYY"``.
  That filter compares whole days in the account's time zone, which can be
  anywhere from UTC-12 to UTC+14. So the day sent is the UTC day of the
  high-water mark minus the lookback, minus one more day, and no record
  changed after the mark falls before it. Records read again are unchanged for the
  engine's content hash.
- Full reads list ids with SuiteQL by key (``id > last ORDER BY id``, offset
  always 0), so they never reach the 100,000-result offset cap. An incremental
  window with more results than the cap is listed the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
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
from interlink.connectors.errors import SourceDataError, SourceRejected
from interlink.connectors.netsuite.client import RESULT_CAP, NetSuiteClient, Tuning, next_link
from interlink.connectors.netsuite.mapping import (
    RefMaker,
    map_item,
    map_location,
    map_purchase_order,
    map_vendor,
    parse_time,
    ref_maker,
)
from interlink.model import EntityData

logger = logging.getLogger(__name__)

Mapper = Callable[[Mapping[str, Any], RefMaker], EntityData]


@dataclass(frozen=True)
class RecordKind:
    record_type: str
    table: str
    condition: str
    mapper: Mapper


KINDS = {
    "purchase_order": RecordKind("purchaseOrder", "transaction", "type = 'PurchOrd'", map_purchase_order),
    "vendor": RecordKind("vendor", "vendor", "", map_vendor),
    "part": RecordKind("inventoryItem", "item", "itemtype = 'InvtPart'", map_item),
    "location": RecordKind("location", "location", "", map_location),
}


def account_day(moment: datetime) -> str:
    """Return the day to send in a date filter so that it covers ``moment`` in any time zone.

    NOTE: NetSuite reads the date in the user's date format preference; this
    assumes the default M/D/YYYY.
    """
    day = (moment.astimezone(UTC) - timedelta(days=1)).date()
    return f"{day.month}/{day.day}/{day.year}"


@dataclass(frozen=True)
class Cursor:
    high_water_mark: datetime | None = None
    after_id: int | None = None
    started_at: datetime | None = None

    def encode(self) -> str:
        values = {
            "hwm": self.high_water_mark.isoformat() if self.high_water_mark else None,
            "after": self.after_id,
            "started": self.started_at.isoformat() if self.started_at else None,
        }
        return json.dumps({key: value for key, value in values.items() if value is not None}, sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            values = json.loads(text)
            return cls(
                datetime.fromisoformat(values["hwm"]) if values.get("hwm") else None,
                values.get("after"),
                datetime.fromisoformat(values["started"]) if values.get("started") else None,
            )
        except (ValueError, TypeError, KeyError):
            logger.warning("netsuite.cursor.invalid action=start_over")
            return cls()


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)


class NetSuiteConnector:
    def __init__(self, context: ConnectorContext, tuning: Tuning, lookback: timedelta) -> None:
        self.client = NetSuiteClient(context.http, context.credentials, tuning)
        self.tuning = tuning
        self.make_ref = ref_maker(context.connection_id)
        self.lookback = lookback

    async def check(self) -> None:
        await self.client.request("GET", "/services/rest/record/v1/vendor", params={"limit": "1"})

    def reader(self, entity: str) -> EntityReader:
        if entity not in KINDS:
            raise SourceRejected(f"entity {entity!r} is not read from NetSuite; valid: {', '.join(KINDS)}")
        return RecordReader(self, KINDS[entity])

    def writer(self, entity: str) -> EntityWriter | None:
        return None


class RecordReader:
    def __init__(self, connector: NetSuiteConnector, kind: RecordKind) -> None:
        self.client = connector.client
        self.tuning = connector.tuning
        self.make_ref = connector.make_ref
        self.lookback = connector.lookback
        self.kind = kind
        self.started_at: datetime | None = None

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        state = Cursor.decode(cursor)
        full = window.mode == "full"
        resuming = full and state.after_id is not None
        if full:
            since = window.history_start
        else:
            since = state.high_water_mark - self.lookback if state.high_water_mark else window.history_start
        latest = state.high_water_mark if resuming else None
        self.started_at = state.started_at if resuming else None
        logger.info(
            "netsuite.read.started record_type=%s mode=%s since=%s", self.kind.record_type, window.mode, since
        )

        batch: list[str] = []
        if full:
            listing = self.keyset_ids(since, state.after_id if resuming else None)
        else:
            listing = self.changed_ids(since)
        async for record_id in listing:
            batch.append(record_id)
            if len(batch) < self.tuning.page_size:
                continue
            records = await self.fetch(batch)
            for record in records:
                latest = _later(latest, record.remote_updated_at)
            middle = Cursor(latest, int(batch[-1]), self.started_at) if full else state
            yield Page(records, middle.encode() if middle != Cursor() else cursor)
            batch = []
        records = await self.fetch(batch)
        for record in records:
            latest = _later(latest, record.remote_updated_at)
        final = self.final_mark(latest, None if full else state.high_water_mark)
        yield Page(records, Cursor(final).encode(), complete=full)

    def final_mark(self, latest: datetime | None, previous: datetime | None) -> datetime | None:
        """Cap the mark at the source's clock when the listing began, and never move it back."""
        if latest is None:
            return _later(previous, self.started_at)
        capped = min(latest, self.started_at) if self.started_at else latest
        return _later(previous, capped)

    async def changed_ids(self, since: datetime) -> AsyncIterator[str]:
        url: str | None = f"{self.client.base_url}/services/rest/record/v1/{self.kind.record_type}"
        params: dict[str, str] | None = {
            "q": f'lastModifiedDate ON_OR_AFTER "{account_day(since)}"',
            "limit": str(self.tuning.list_limit),
        }
        offset = 0
        for _ in range(self.tuning.max_pages):
            if url is None:
                return
            body, answered = await self.client.list_page(url, params)
            self.started_at = self.started_at or answered
            if int(body.get("totalResults", 0)) > RESULT_CAP:
                logger.info("netsuite.listing.over_cap record_type=%s action=keyset", self.kind.record_type)
                async for record_id in self.keyset_ids(since, None):
                    yield record_id
                return
            for item in body.get("items", []):
                yield str(item["id"])
            current = (
                url if params is None else str(self.client.http.build_request("GET", url, params=params).url)
            )
            url = next_link(body, current, offset)
            params = None
            offset = int(body.get("offset", offset)) + self.tuning.list_limit
        raise SourceDataError(
            f"listing {self.kind.record_type} passed {self.tuning.max_pages} pages; stopped"
        )

    async def keyset_ids(self, since: datetime, after: int | None) -> AsyncIterator[str]:
        last = after if after is not None else 0
        for _ in range(self.tuning.max_pages):
            query = keyset_query(self.kind, since, last)
            body, answered = await self.client.suiteql(query, limit=self.tuning.list_limit)
            self.started_at = self.started_at or answered
            ids = [int(item["id"]) for item in body.get("items", [])]
            for record_id in ids:
                yield str(record_id)
            if not body.get("hasMore"):
                return
            if not ids or ids[-1] <= last:
                raise SourceDataError(
                    f"SuiteQL paging of {self.kind.table} did not advance past id {last}; stopped"
                )
            last = ids[-1]
        raise SourceDataError(f"listing {self.kind.table} passed {self.tuning.max_pages} pages; stopped")

    async def fetch(self, record_ids: list[str]) -> list[SourceRecord]:
        limit = asyncio.Semaphore(self.tuning.concurrency)

        async def one(record_id: str) -> dict[str, Any] | None:
            async with limit:
                return await self.client.get_record(self.kind.record_type, record_id)

        raws = await asyncio.gather(*(one(record_id) for record_id in record_ids))
        return [self.to_record(raw) for raw in raws if raw is not None]

    def to_record(self, raw: Mapping[str, Any]) -> SourceRecord:
        return SourceRecord(
            remote_id=str(raw["id"]),
            data=self.kind.mapper(raw, self.make_ref),
            raw=dict(raw),
            remote_created_at=parse_time(raw.get("createdDate") or raw.get("dateCreated")),
            remote_updated_at=parse_time(raw.get("lastModifiedDate")),
        )


def keyset_query(kind: RecordKind, since: datetime, after: int) -> str:
    """Build the SuiteQL listing of the ids after ``after`` changed since the day before ``since``."""
    day = (since.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    conditions = [kind.condition, f"lastmodifieddate >= TO_DATE('{day}', 'YYYY-MM-DD')", f"id > {int(after)}"]
    where = " AND ".join(condition for condition in conditions if condition)
    # Every part is a constant of this module, a formatted date or an int, so nothing needs quoting.
    return f"SELECT id FROM {kind.table} WHERE {where} ORDER BY id"  # noqa: S608
