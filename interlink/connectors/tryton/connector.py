"""Entity readers for Tryton: paging by id, incremental by ``last_modified_at``.

Every read pages through one model in id order (``id > last id``), so a page
boundary can neither skip nor repeat a record. An incremental read takes the
records whose ``last_modified_at`` (or, for purchases, a line's) is at or
after the previous high-water mark minus the lookback. Tryton stamps a change
with its transaction's start time, so a change committed during a read can
carry a time before the read began. The next high-water mark is therefore
the newest change time at the *start* of a read, not at its end.

Cursor, as JSON: ``{"since": ...}`` between reads; during a read also
``"after"`` (last id read), ``"next_since"`` and ``"model"`` (for entities
read from several models), so a crash resumes the read where it stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from interlink.connectors.base import (
    ConnectorContext,
    EntityReader,
    EntityWriter,
    Page,
    ReadWindow,
    SourceRecord,
)
from interlink.connectors.errors import SourceRejected
from interlink.connectors.tryton import mapping
from interlink.connectors.tryton.client import Domain, RestClient, RpcClient, TrytonClient
from interlink.model import EntityData

logger = logging.getLogger(__name__)

PAGE_SIZE = 200

PURCHASE_FIELDS = (
    "number", "reference", "description", "state", "shipment_state", "party", "warehouse",
    "purchase_date", "delivery_date", "currency.code", "payment_term.name", "untaxed_amount",
    "tax_amount", "total_amount", "comment", "create_date", "last_modified_at",
)  # fmt: skip
LINE_FIELDS = (
    "purchase", "type", "sequence", "product", "description", "quantity", "unit.symbol",
    "unit_price", "amount", "delivery_date", "last_modified_at",
)  # fmt: skip
PARTY_FIELDS = (
    "code", "name", "email", "phone", "website", "active", "supplier_currency.code",
    "create_date", "last_modified_at",
)  # fmt: skip
ADDRESS_FIELDS = ("party", "sequence", "street", "city", "postal_code", "country.code", "subdivision.name")
PRODUCT_FIELDS = (
    "code", "name", "description", "type", "default_uom.symbol", "cost_price", "active",
    "create_date", "last_modified_at",
)  # fmt: skip
WORK_FIELDS = (
    "rec_name", "state", "work_center", "production.number", "operation.name", "create_date",
    "last_modified_at",
)  # fmt: skip
CYCLE_FIELDS = ("work", "state", "duration", "last_modified_at")
LOCATION_FIELDS = ("name", "code", "type", "parent", "active", "create_date", "last_modified_at")
CENTER_FIELDS = ("name", "parent", "active", "create_date", "last_modified_at")
USER_FIELDS = ("login", "name", "email", "active", "create_date", "last_modified_at")


@dataclass(frozen=True)
class ModelSource:
    """One Tryton model read for an entity, with its filters and how to build records from a page."""

    model: str
    fields: Sequence[str]
    build: Callable[[TrytonClient, list[dict[str, Any]]], Any]
    base_domain: Domain
    # Extra change-time fields of child records that count as a change of the parent.
    child_change_fields: Sequence[str] = ()
    active_test: bool = False


def _cursor(value: str | None) -> dict[str, Any]:
    return json.loads(value) if value else {}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class ModelReader:
    """Reads an entity from one or more Tryton models, page by page."""

    def __init__(self, client: TrytonClient, sources: Sequence[ModelSource], lookback: timedelta) -> None:
        self._client = client
        self._sources = sources
        self._lookback = lookback

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        state = _cursor(cursor)
        resuming = "after" in state
        since = _time(state.get("since"))
        next_since = _time(state.get("next_since")) if resuming else await self._newest_change()
        lower: datetime | None
        if window.mode == "full":
            lower = window.history_start
        else:
            lower = since - self._lookback if since is not None else None
        start_model = state.get("model", self._sources[0].model) if resuming else self._sources[0].model
        after = int(state.get("after", 0)) if resuming else 0
        started = False

        for index, source in enumerate(self._sources):
            if not started and source.model != start_model:
                continue
            started = True
            if source.model != start_model:
                after = 0
            last_source = index == len(self._sources) - 1
            async for records, last_id, done in self._pages(source, lower, after):
                finished = done and last_source
                if finished:
                    final = next_since or since
                    position: dict[str, Any] = {"since": final.isoformat() if final else None}
                else:
                    position = {
                        "since": since.isoformat() if since else None,
                        "next_since": next_since.isoformat() if next_since else None,
                        "model": source.model if not done else self._sources[index + 1].model,
                        "after": last_id if not done else 0,
                    }
                yield Page(
                    records=records, cursor=json.dumps(position), complete=finished and window.mode == "full"
                )

    async def _pages(
        self, source: ModelSource, lower: datetime | None, after: int
    ) -> AsyncIterator[tuple[list[SourceRecord], int, bool]]:
        domain: Domain = list(source.base_domain)
        if lower is not None:
            changed: Domain = [["last_modified_at", ">=", lower]]
            for field in source.child_change_fields:
                changed = ["OR", *changed, [field, ">=", lower]]
            domain.append(changed)
        while True:
            rows = await self._client.search_read(
                source.model,
                [*domain, ["id", ">", after]],
                source.fields,
                order=[("id", "ASC")],
                limit=PAGE_SIZE,
                active_test=source.active_test,
            )
            done = len(rows) < PAGE_SIZE
            records = await source.build(self._client, rows) if rows else []
            if rows:
                after = int(rows[-1]["id"])
            yield records, after, done
            if done:
                return

    async def _newest_change(self) -> datetime | None:
        """Return the newest change time in the source, which becomes the next read's high-water mark."""
        newest: datetime | None = None
        for source in self._sources:
            for model in (source.model, *[_child_model(field) for field in source.child_change_fields]):
                rows = await self._client.search_read(
                    model,
                    [],
                    ["last_modified_at"],
                    order=[("last_modified_at", "DESC")],
                    limit=1,
                    active_test=False,
                )
                if rows and isinstance(rows[0].get("last_modified_at"), datetime):
                    newest = mapping.latest(newest, rows[0]["last_modified_at"])
        return newest


_CHILD_MODELS = {
    "lines.last_modified_at": "purchase.line",
    "cycles.last_modified_at": "production.work.cycle",
}


def _child_model(field: str) -> str:
    return _CHILD_MODELS[field]


def _source_record(
    remote_id: str, data: EntityData, raw: dict[str, Any], updated: datetime | None = None
) -> SourceRecord:
    return SourceRecord(
        remote_id=remote_id,
        data=data,
        raw=raw,
        remote_created_at=raw.get("create_date"),
        remote_updated_at=updated or raw.get("last_modified_at"),
    )


def _by_parent(rows: list[dict[str, Any]], field: str) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        parent = row.get(field)
        key = parent.get("id") if isinstance(parent, dict) else parent
        if isinstance(key, int):
            grouped.setdefault(key, []).append(row)
    return grouped


class TrytonConnector:
    def __init__(self, context: ConnectorContext, client: TrytonClient, lookback: timedelta) -> None:
        self._connection_id = context.connection_id
        self._client = client
        self._lookback = lookback

    async def check(self) -> None:
        await self._client.check()

    def writer(self, entity: str) -> EntityWriter | None:
        return None

    def reader(self, entity: str) -> EntityReader:
        sources = {
            "purchase_order": [self._purchases()],
            "vendor": [self._parties()],
            "part": [ModelSource("product.product", PRODUCT_FIELDS, self._build_parts, [])],
            "work_order": [self._works()],
            "location": [
                ModelSource(
                    "stock.location",
                    LOCATION_FIELDS,
                    self._build_stock_locations,
                    [["type", "in", list(mapping.STOCK_LOCATION_TYPES)]],
                ),
                ModelSource(mapping.WORK_CENTER, CENTER_FIELDS, self._build_work_centers, []),
            ],
            "user": [ModelSource("res.user", USER_FIELDS, self._build_users, [["login", "!=", "root"]])],
        }.get(entity)
        if sources is None:
            raise SourceRejected(f"the tryton integration does not read entity {entity!r}")
        return ModelReader(self._client, sources, self._lookback)

    def _purchases(self) -> ModelSource:
        return ModelSource(
            "purchase.purchase",
            PURCHASE_FIELDS,
            self._build_purchases,
            [],
            child_change_fields=("lines.last_modified_at",),
        )

    async def _build_purchases(self, client: TrytonClient, rows: list[dict[str, Any]]) -> list[SourceRecord]:
        ids = [row["id"] for row in rows]
        lines = await _read_all(client, "purchase.line", [["purchase", "in", ids]], LINE_FIELDS)
        by_purchase = _by_parent(lines, "purchase")
        records = []
        for row in rows:
            own = by_purchase.get(row["id"], [])
            updated = mapping.latest(
                row.get("last_modified_at"), *(line.get("last_modified_at") for line in own)
            )
            data = mapping.purchase_order(self._connection_id, row, own)
            records.append(_source_record(str(row["id"]), data, {**row, "lines": own}, updated))
        return records

    def _parties(self) -> ModelSource:
        return ModelSource("party.party", PARTY_FIELDS, self._build_vendors, [])

    async def _build_vendors(self, client: TrytonClient, rows: list[dict[str, Any]]) -> list[SourceRecord]:
        companies = await client.search_read("company.company", [], ["party"], order=[("id", "ASC")])
        own_parties = {company["party"] for company in companies}
        suppliers = [row for row in rows if row["id"] not in own_parties]
        ids = [row["id"] for row in suppliers]
        addresses = await _read_all(client, "party.address", [["party", "in", ids]], ADDRESS_FIELDS)
        by_party = _by_parent(addresses, "party")
        return [
            _source_record(
                str(row["id"]),
                mapping.vendor(row, by_party.get(row["id"], [])),
                {**row, "addresses": by_party.get(row["id"], [])},
            )
            for row in suppliers
        ]

    async def _build_parts(self, client: TrytonClient, rows: list[dict[str, Any]]) -> list[SourceRecord]:
        return [_source_record(str(row["id"]), mapping.part(row), row) for row in rows]

    def _works(self) -> ModelSource:
        return ModelSource(
            "production.work",
            WORK_FIELDS,
            self._build_works,
            [],
            child_change_fields=("cycles.last_modified_at",),
        )

    async def _build_works(self, client: TrytonClient, rows: list[dict[str, Any]]) -> list[SourceRecord]:
        ids = [row["id"] for row in rows]
        cycles = await _read_all(client, "production.work.cycle", [["work", "in", ids]], CYCLE_FIELDS)
        by_work = _by_parent(cycles, "work")
        records = []
        for row in rows:
            own = by_work.get(row["id"], [])
            updated = mapping.latest(
                row.get("last_modified_at"), *(cycle.get("last_modified_at") for cycle in own)
            )
            data = mapping.work_order(self._connection_id, row, own)
            records.append(_source_record(str(row["id"]), data, {**row, "cycles": own}, updated))
        return records

    async def _build_stock_locations(
        self, client: TrytonClient, rows: list[dict[str, Any]]
    ) -> list[SourceRecord]:
        return [
            _source_record(
                f"stock.location/{row['id']}", mapping.stock_location(self._connection_id, row), row
            )
            for row in rows
        ]

    async def _build_work_centers(
        self, client: TrytonClient, rows: list[dict[str, Any]]
    ) -> list[SourceRecord]:
        return [
            _source_record(
                f"{mapping.WORK_CENTER}/{row['id']}", mapping.work_center(self._connection_id, row), row
            )
            for row in rows
        ]

    async def _build_users(self, client: TrytonClient, rows: list[dict[str, Any]]) -> list[SourceRecord]:
        return [_source_record(str(row["id"]), mapping.user(row), row) for row in rows]


async def _read_all(
    client: TrytonClient, model: str, domain: Domain, fields: Sequence[str]
) -> list[dict[str, Any]]:
    return await client.search_read(model, domain, fields, order=[("id", "ASC")], active_test=False)


def build_client(context: ConnectorContext) -> TrytonClient:
    credentials = context.credentials
    if context.auth_scheme == "api_key":
        return RestClient(context.http, credentials["url"], credentials["database"], credentials["api_key"])
    return RpcClient(
        context.http,
        credentials["url"],
        credentials["database"],
        credentials["username"],
        credentials["password"],
    )
