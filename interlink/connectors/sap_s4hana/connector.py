"""The SAP S/4HANA connector: one reader per entity, all driven by the same keyset pass.

Each entity is declared as an ``EntitySpec``: the service and entity set, the
key the pass orders by, the change stamp it filters on, and the mapping.

Rules for the source's traps:

- Inclusive boundaries: the change filter is ``ge`` the lower bound, so records
  stamped in the same second as the high-water mark are read again. The engine
  counts them as unchanged by their content hash.
- Lookback: an incremental pass starts ``lookback`` before the high-water mark,
  so records that changed while the last pass ran are read again.
- Date-only and local-time stamps (business partners keep ``LastChangeDate`` and
  ``LastChangeTime`` in the system's time zone, which the API does not name):
  the filter compares dates only and starts one day before the lower bound, so
  no zone offset can put a change outside every window.
- Item edits that do not move the header's ``LastChangeDateTime`` (purchase
  order items and maintenance order operations have no change stamp of their
  own): every ``item_sweep_interval`` an incremental read becomes a sweep that
  reads every record of the window with its items, so an item-only edit shows up
  within that interval. Full reads count as sweeps.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from interlink.connectors.base import (
    ConnectorContext,
    EntityReader,
    EntityWriter,
    Page,
    ReadWindow,
    SourceRecord,
)
from interlink.connectors.errors import SourceDataError
from interlink.connectors.http import RetryPolicy, Sleep
from interlink.connectors.odata import all_of, any_of, compare, parse_edm_time, parse_json_datetime
from interlink.connectors.sap_s4hana import mapping
from interlink.connectors.sap_s4hana.client import SapClient, SapSettings
from interlink.connectors.sap_s4hana.cursor import Cursor, Position, later
from interlink.model import EntityData

logger = logging.getLogger(__name__)

Raw = Mapping[str, Any]
Clock = Callable[[], datetime]
CHECK_SERVICE = "API_PURCHASEORDER_PROCESS_SRV"
MAX_BATCHES_PER_PASS = 100_000


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SapOptions:
    """Tunables of the connector; tests shorten the waits and move the clock."""

    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep | None = None
    clock: Clock = utcnow
    # Records per keyset batch ($top); SAP may split a batch into several pages.
    page_size: int = 200
    lookback: timedelta = timedelta(minutes=10)
    item_sweep_interval: timedelta = timedelta(hours=24)


class ChangeMark(Protocol):
    """Change-stamp strategy of an entity: reading the mark, filtering on it, reporting it."""

    def of(self, raw: Raw) -> datetime | None: ...

    def window_start(self, history_start: datetime) -> datetime: ...

    def filter(self, lower: datetime) -> str: ...

    def remote_updated_at(self, raw: Raw) -> datetime | None: ...


@dataclass(frozen=True)
class OffsetStamp:
    """An ``Edm.DateTimeOffset`` change stamp, compared as an instant."""

    name: str

    def of(self, raw: Raw) -> datetime | None:
        return mapping.utc_time(raw, self.name)

    def window_start(self, history_start: datetime) -> datetime:
        return history_start.astimezone(UTC)

    def filter(self, lower: datetime) -> str:
        return compare(self.name, "ge", lower)

    def remote_updated_at(self, raw: Raw) -> datetime | None:
        return self.of(raw)


@dataclass(frozen=True)
class LocalDateTimeStamp:
    """A change date and time in the system's unnamed local zone, null until the first change."""

    date_name: str
    time_name: str
    created_date_name: str
    created_time_name: str

    def of(self, raw: Raw) -> datetime | None:
        changed = _local(raw, self.date_name, self.time_name)
        return changed or _local(raw, self.created_date_name, self.created_time_name)

    def window_start(self, history_start: datetime) -> datetime:
        return history_start.astimezone(UTC).replace(tzinfo=None)

    def filter(self, lower: datetime) -> str:
        day = datetime.combine(lower.date() - timedelta(days=1), time())
        return any_of(compare(self.date_name, "ge", day), compare(self.created_date_name, "ge", day))

    def remote_updated_at(self, raw: Raw) -> datetime | None:
        # The wall-clock time has no zone, so it cannot be given in UTC.
        return None


def _local(raw: Raw, date_name: str, time_name: str) -> datetime | None:
    day_value, time_value = raw.get(date_name), raw.get(time_name)
    if not day_value:
        return None
    day: date = parse_json_datetime(day_value).date()
    moment = parse_edm_time(time_value) if time_value else time()
    return datetime.combine(day, moment)


@dataclass(frozen=True)
class EntitySpec:
    """Read specification of one unified entity: where it lives in SAP and how it maps."""

    entity: str
    service: str
    entity_set: str
    key: str
    mark: ChangeMark
    build: Callable[[Raw, mapping.RefBuilder], EntityData]
    expand: str | None = None
    base_filter: str | None = None
    # The property whose value is the remote id, when it is not the key (a supplier's number).
    remote_id_property: str | None = None
    # Items have no change stamp of their own, so item edits need a sweep to be seen.
    sweeps_items: bool = False


SPECS: dict[str, EntitySpec] = {
    spec.entity: spec
    for spec in (
        EntitySpec(
            "purchase_order",
            "API_PURCHASEORDER_PROCESS_SRV",
            "A_PurchaseOrder",
            "PurchaseOrder",
            OffsetStamp("LastChangeDateTime"),
            mapping.purchase_order,
            expand="to_PurchaseOrderItem",
            sweeps_items=True,
        ),
        EntitySpec(
            "work_order",
            "API_MAINTENANCEORDER",
            "MaintenanceOrder",
            "MaintenanceOrder",
            OffsetStamp("LastChangeDateTime"),
            mapping.work_order,
            expand="to_MaintenanceOrderOperation",
            sweeps_items=True,
        ),
        EntitySpec(
            "vendor",
            "API_BUSINESS_PARTNER",
            "A_BusinessPartner",
            "BusinessPartner",
            LocalDateTimeStamp("LastChangeDate", "LastChangeTime", "CreationDate", "CreationTime"),
            lambda raw, ref: mapping.vendor(raw),
            expand="to_BusinessPartnerAddress/to_EmailAddress,to_BusinessPartnerAddress/to_PhoneNumber",
            base_filter="Supplier ne ''",
            remote_id_property="Supplier",
        ),
        EntitySpec(
            "part",
            "API_PRODUCT_SRV",
            "A_Product",
            "Product",
            OffsetStamp("LastChangeDateTime"),
            lambda raw, ref: mapping.part(raw),
            expand="to_Description",
        ),
        EntitySpec(
            "asset",
            "API_EQUIPMENT",
            "Equipment",
            "Equipment",
            OffsetStamp("LastChangeDateTime"),
            mapping.asset,
            # Only the current time segment, so that Equipment alone is a unique key.
            base_filter="ValidityEndDate eq datetime'9999-12-31T00:00:00'",
        ),
        EntitySpec(
            "location",
            "API_FUNCTIONALLOCATION",
            "FunctionalLocation",
            "FunctionalLocation",
            OffsetStamp("LastChangeDateTime"),
            mapping.location,
        ),
    )
}


class SapConnector:
    """The SAP S/4HANA connector bound to one connection."""

    def __init__(self, context: ConnectorContext, options: SapOptions) -> None:
        settings = SapSettings.from_credentials(context.credentials)
        self.client = SapClient(context.http, settings, policy=options.retry_policy, sleep=options.sleep)
        self.connection_id = context.connection_id
        self.options = options

    async def check(self) -> None:
        await self.client.check(CHECK_SERVICE)

    def reader(self, entity: str) -> EntityReader:
        spec = SPECS.get(entity)
        if spec is None:
            raise ValueError(f"sap_s4hana does not read {entity!r}; it reads {', '.join(SPECS)}")
        return SapReader(self.client, spec, mapping.ref_builder(self.connection_id), self.options)

    def writer(self, entity: str) -> EntityWriter | None:
        return None


class SapReader:
    """Reads one entity in keyset passes; see the module docstring for the rules."""

    def __init__(
        self, client: SapClient, spec: EntitySpec, ref: mapping.RefBuilder, options: SapOptions
    ) -> None:
        self.client = client
        self.spec = spec
        self.ref = ref
        self.options = options

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        state = Cursor.decode(cursor)
        position = self._position(state, window)
        logger.info(
            "sap.read.started entity=%s pass=%s lower=%s after=%s",
            self.spec.entity,
            position.kind,
            position.lower,
            position.after,
        )
        async for page in self._pass(state, position):
            yield page

    def _position(self, state: Cursor, window: ReadWindow) -> Position:
        now = self.options.clock().astimezone(UTC)
        window_start = self.spec.mark.window_start(window.history_start)
        resumable = ("full",) if window.mode == "full" else ("incremental", "sweep")
        if state.position is not None and state.position.kind in resumable:
            return state.position
        if window.mode == "full":
            return Position("full", window_start.isoformat(), now.isoformat())
        if self.spec.sweeps_items and self._sweep_due(state, now):
            return Position("sweep", window_start.isoformat(), now.isoformat())
        lower = window_start
        if state.hwm is not None:
            lower = max(datetime.fromisoformat(state.hwm) - self.options.lookback, window_start)
        return Position("incremental", lower.isoformat(), now.isoformat())

    def _sweep_due(self, state: Cursor, now: datetime) -> bool:
        if state.swept_at is None:
            return True
        return now - datetime.fromisoformat(state.swept_at) >= self.options.item_sweep_interval

    async def _pass(self, state: Cursor, position: Position) -> AsyncIterator[Page]:
        lower = datetime.fromisoformat(position.lower)
        after, high = position.after, position.high
        pending: Page | None = None
        for _ in range(MAX_BATCHES_PER_PASS):
            # NOTE: SAP may split one batch into pages with an offset $skiptoken. A record
            # deleted from the batch's range between two of those pages shifts the rest,
            # so one record of the batch can be missed until the next pass reads it.
            read = 0
            async for entities in self.client.pages(
                self.spec.service, self.spec.entity_set, self._params(lower, after)
            ):
                records = []
                for raw in entities:
                    after = self._next_key(raw, after)
                    mark = self.spec.mark.of(raw)
                    high = later(high, mark.isoformat() if mark else None)
                    records.append(self._record(raw))
                read += len(entities)
                if pending is not None:
                    yield pending
                page_cursor = state.advanced(position, after=after, high=high) if after else state
                pending = Page(records, page_cursor.encode())
            if read < self.options.page_size:
                break
        else:
            raise SourceDataError(
                f"reading {self.spec.entity} needed more than {MAX_BATCHES_PER_PASS} batches"
            )
        final = state.finished(position, high=high)
        yield Page(pending.records if pending else [], final.encode(), complete=position.kind == "full")
        logger.info("sap.read.finished entity=%s pass=%s hwm=%s", self.spec.entity, position.kind, final.hwm)

    def _params(self, lower: datetime, after: str | None) -> dict[str, str]:
        spec = self.spec
        conditions = [spec.base_filter or "", spec.mark.filter(lower)]
        if after is not None:
            conditions.append(compare(spec.key, "gt", after))
        params = {
            "$filter": all_of(*conditions),
            "$orderby": f"{spec.key} asc",
            "$top": str(self.options.page_size),
        }
        if spec.expand:
            params["$expand"] = spec.expand
        return params

    def _next_key(self, raw: Raw, after: str | None) -> str:
        key = raw.get(self.spec.key)
        if not isinstance(key, str) or not key:
            raise SourceDataError(f"a {self.spec.entity_set} entity arrived without its key {self.spec.key}")
        if after is not None and key <= after:
            raise SourceDataError(
                f"{self.spec.entity_set} {key!r} arrived after {after!r}: the response is not in the "
                "requested key order or repeats records, so keyset paging cannot continue safely"
            )
        return key

    def _record(self, raw: Raw) -> SourceRecord:
        remote_id = mapping.text(raw, self.spec.remote_id_property or self.spec.key)
        if remote_id is None:
            raise SourceDataError(f"a {self.spec.entity_set} entity arrived without its remote id")
        try:
            data = self.spec.build(raw, self.ref)
            updated = self.spec.mark.remote_updated_at(raw)
        except ValueError as exc:
            raise SourceDataError(f"{self.spec.entity_set} {remote_id!r} cannot be mapped: {exc}") from exc
        return SourceRecord(
            remote_id=remote_id,
            data=data,
            raw=mapping.clean_raw(raw),
            remote_updated_at=updated,
        )


def build_connector(options: SapOptions) -> Callable[[ConnectorContext], SapConnector]:
    def build(context: ConnectorContext) -> SapConnector:
        return SapConnector(context, options)

    return build
