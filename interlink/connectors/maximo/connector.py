"""The Maximo connector: readers for work orders, assets and locations.

Rules for the source's traps:

- Inclusive boundaries and lookback: incremental reads filter ``changedate >=``
  the high-water mark minus ``lookback``, so equal stamps and changes made
  during the last read are read again. The engine counts unchanged ones by hash.
- Local time: Maximo reads a date without an offset in the server's time zone,
  so every date the connector sends carries an explicit UTC offset.
- Task edits: a task is a work order row of its own, and editing it does not
  move the parent's ``changedate``. Each incremental read of work orders also
  requests the tasks changed since the lower bound and reads their parents, so a
  task-only edit shows up in the next incremental read. A work order's change
  time is the latest ``changedate`` of the order and its tasks.
- Paging: incremental reads follow ``nextPage`` links in ``changedate`` order and
  move the high-water mark only on their last page, so a read that stopped
  starts over from the same mark. Full reads order by the unique id
  (``workorderid``, ``assetuid``, ``locationsid``) and remember the last id on
  every page, so a full read that stopped resumes after it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
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
from interlink.connectors.errors import SourceDataError
from interlink.connectors.http import RetryPolicy, Sleep
from interlink.connectors.maximo import mapping
from interlink.connectors.maximo.client import MaximoClient, MaximoSettings
from interlink.model import EntityData

logger = logging.getLogger(__name__)

Raw = Mapping[str, Any]
CURSOR_VERSION = 1

WORK_ORDER_SELECT = (
    "workorderid,wonum,siteid,description,description_longdescription,status,worktype,wopriority,"
    "assetnum,location,parent,schedstart,targcompdate,actstart,actfinish,estdur,actlabhrs,changedate,"
    "woactivity{wonum,taskid,description,status,estdur,actlabhrs,changedate}"
)


@dataclass(frozen=True)
class MaximoOptions:
    """Tunables of the connector; tests shorten the waits."""

    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep | None = None
    page_size: int = 100
    lookback: timedelta = timedelta(minutes=5)
    # Parents of changed tasks read per request (wonum in [...]).
    parent_batch: int = 50


@dataclass(frozen=True)
class StructureSpec:
    """Read specification of one unified entity: its object structure, keys and mapping."""

    entity: str
    structure: str
    id_attribute: str
    key_attribute: str
    select: str
    build: Callable[[Raw, mapping.RefBuilder], EntityData]
    base_where: str = ""
    children: tuple[str, ...] = ()
    # Tasks are rows of their own whose edits leave the parent's changedate alone.
    reads_changed_tasks: bool = False


SPECS: dict[str, StructureSpec] = {
    spec.entity: spec
    for spec in (
        StructureSpec(
            "work_order",
            "mxapiwo",
            "workorderid",
            "wonum",
            WORK_ORDER_SELECT,
            mapping.work_order,
            base_where="istask=0",
            children=("woactivity",),
            reads_changed_tasks=True,
        ),
        StructureSpec(
            "asset",
            "mxapiasset",
            "assetuid",
            "assetnum",
            "assetuid,assetnum,siteid,description,status,assettype,location,parent,manufacturer,serialnum,"
            "installdate,purchaseprice,changedate",
            mapping.asset,
        ),
        StructureSpec(
            "location",
            "mxapilocations",
            "locationsid",
            "location",
            "locationsid,location,siteid,description,type,status,changedate,lochierarchy{parent,systemid}",
            mapping.location,
        ),
    )
}


@dataclass(frozen=True)
class FullPosition:
    """An unfinished full read: its window start, the last id read and the latest change seen."""

    lower: str
    after: int | None = None
    high: str | None = None


@dataclass(frozen=True)
class MaximoCursor:
    """The committed state of one entity's reads: a high-water mark, and an unfinished full read."""

    hwm: str | None = None
    full: FullPosition | None = None

    def encode(self) -> str:
        full = (
            None
            if self.full is None
            else {"lower": self.full.lower, "after": self.full.after, "high": self.full.high}
        )
        return json.dumps({"v": CURSOR_VERSION, "hwm": self.hwm, "full": full}, sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> MaximoCursor:
        """Read a stored cursor; one this version cannot read starts the entity over, with a warning."""
        if not text:
            return cls()
        try:
            body = json.loads(text)
            if body.get("v") != CURSOR_VERSION:
                raise ValueError(f"cursor version {body.get('v')!r} is not {CURSOR_VERSION}")
            full = FullPosition(**body["full"]) if body.get("full") else None
            return cls(hwm=body.get("hwm"), full=full)
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("maximo.cursor.unreadable error=%s", exc)
            return cls()


def later(first: str | None, second: datetime | None) -> str | None:
    if second is None:
        return first
    if first is None or datetime.fromisoformat(first) < second:
        return second.astimezone(UTC).isoformat()
    return first


def where_date(value: datetime) -> str:
    """Quote a time for ``oslc.where``, in UTC with an explicit offset and whole seconds (rounded down)."""
    return '"' + value.astimezone(UTC).replace(microsecond=0).isoformat() + '"'


def where_string(value: str) -> str:
    """Quote a string for ``oslc.where``, escaping backslashes and double quotes with a backslash."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _where(*terms: str) -> str:
    return " and ".join(term for term in terms if term)


class MaximoConnector:
    """The Maximo connector bound to one connection."""

    def __init__(self, context: ConnectorContext, options: MaximoOptions) -> None:
        settings = MaximoSettings.from_credentials(context.credentials)
        self.client = MaximoClient(context.http, settings, policy=options.retry_policy, sleep=options.sleep)
        self.connection_id = context.connection_id
        self.options = options

    async def check(self) -> None:
        await self.client.whoami()

    def reader(self, entity: str) -> EntityReader:
        spec = SPECS.get(entity)
        if spec is None:
            raise ValueError(f"maximo does not read {entity!r}; it reads {', '.join(SPECS)}")
        return MaximoReader(self.client, spec, mapping.ref_builder(self.connection_id), self.options)

    def writer(self, entity: str) -> EntityWriter | None:
        return None


class MaximoReader:
    """Reads one object structure; see the module docstring for the rules."""

    def __init__(
        self, client: MaximoClient, spec: StructureSpec, ref: mapping.RefBuilder, options: MaximoOptions
    ) -> None:
        self.client = client
        self.spec = spec
        self.ref = ref
        self.options = options

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        state = MaximoCursor.decode(cursor)
        window_start = window.history_start.astimezone(UTC)
        if window.mode == "full":
            position = state.full or FullPosition(lower=window_start.isoformat())
            logger.info("maximo.read.started entity=%s pass=full after=%s", self.spec.entity, position.after)
            pages = self._full(state, position)
        else:
            lower = window_start
            if state.hwm is not None:
                lower = max(datetime.fromisoformat(state.hwm) - self.options.lookback, window_start)
            logger.info("maximo.read.started entity=%s pass=incremental lower=%s", self.spec.entity, lower)
            pages = self._incremental(state, lower)
        async for page in pages:
            yield page

    def _params(self, where: str, order: str, select: str | None = None) -> dict[str, str]:
        params = {
            "oslc.select": select or self.spec.select,
            "oslc.where": where,
            "oslc.orderBy": order,
            "oslc.pageSize": str(self.options.page_size),
        }
        if select is None:
            params["internalvalues"] = "1"
        return params

    async def _full(self, state: MaximoCursor, position: FullPosition) -> AsyncIterator[Page]:
        spec = self.spec
        lower = datetime.fromisoformat(position.lower)
        after, high = position.after, position.high
        where = _where(
            spec.base_where,
            f"changedate>={where_date(lower)}",
            f"{spec.id_attribute}>{after}" if after is not None else "",
        )
        pending: Page | None = None
        async for members in self.client.pages(spec.structure, self._params(where, f"+{spec.id_attribute}")):
            records = []
            for raw in members:
                after = self._next_id(raw, after)
                record = self._record(raw)
                high = later(high, record.remote_updated_at)
                records.append(record)
            if pending is not None:
                yield pending
            pending = Page(
                records, MaximoCursor(state.hwm, FullPosition(position.lower, after, high)).encode()
            )
        final = MaximoCursor(hwm=later(state.hwm, _parse(high)), full=None)
        yield Page(pending.records if pending else [], final.encode(), complete=True)
        logger.info("maximo.read.finished entity=%s pass=full hwm=%s", spec.entity, final.hwm)

    async def _incremental(self, state: MaximoCursor, lower: datetime) -> AsyncIterator[Page]:
        spec = self.spec
        where = _where(spec.base_where, f"changedate>={where_date(lower)}")
        high: str | None = state.hwm
        seen: set[str] = set()
        order = f"+changedate,+{spec.id_attribute}"
        # NOTE: pageno paging is offset-based. A record that changes during the read moves
        # to the end, shifting the rest by one, so another record can be missed; it is read
        # again only if its changedate is within the lookback of the next read's mark.
        pending: list[SourceRecord] | None = None
        async for members in self.client.pages(spec.structure, self._params(where, order)):
            records = [self._record(raw) for raw in members]
            seen.update(record.remote_id for record in records)
            for record in records:
                high = later(high, record.remote_updated_at)
            if pending is not None:
                yield Page(pending, state.encode())
            pending = records
        if spec.reads_changed_tasks:
            async for records, task_high in self._parents_of_changed_tasks(lower, seen):
                high = later(high, task_high)
                if pending is not None:
                    yield Page(pending, state.encode())
                pending = records
        final = MaximoCursor(hwm=high, full=None)
        yield Page(pending or [], final.encode())
        logger.info("maximo.read.finished entity=%s pass=incremental hwm=%s", spec.entity, final.hwm)

    async def _parents_of_changed_tasks(
        self, lower: datetime, seen: set[str]
    ) -> AsyncIterator[tuple[list[SourceRecord], datetime | None]]:
        """Yield the work orders whose tasks changed since ``lower`` and that the read has not seen."""
        spec = self.spec
        parents: dict[str, set[str]] = {}
        task_high: datetime | None = None
        where = f"istask=1 and changedate>={where_date(lower)}"
        params = self._params(where, "+changedate", select="wonum,parent,siteid,changedate")
        async for members in self.client.pages(spec.structure, params):
            for task in members:
                changed = mapping.moment(task, "changedate")
                task_high = max(filter(None, (task_high, changed)), default=None)
                site, parent = mapping.text(task, "siteid"), mapping.text(task, "parent")
                if site and parent and mapping.join_remote_id(site, parent) not in seen:
                    parents.setdefault(site, set()).add(parent)
        logger.info(
            "maximo.read.changed_tasks entity=%s parents=%d", spec.entity, sum(map(len, parents.values()))
        )
        for site, numbers in sorted(parents.items()):
            ordered = sorted(numbers)
            for start in range(0, len(ordered), self.options.parent_batch):
                batch = ordered[start : start + self.options.parent_batch]
                members_in = ",".join(where_string(number) for number in batch)
                where = _where(spec.base_where, f"siteid={where_string(site)}", f"wonum in [{members_in}]")
                async for members in self.client.pages(
                    spec.structure, self._params(where, f"+{spec.id_attribute}")
                ):
                    yield [self._record(raw) for raw in members], task_high

    def _next_id(self, raw: Raw, after: int | None) -> int:
        value = raw.get(self.spec.id_attribute)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SourceDataError(
                f"a {self.spec.structure} member arrived without its {self.spec.id_attribute}"
            )
        if after is not None and value <= after:
            raise SourceDataError(
                f"{self.spec.structure} {self.spec.id_attribute} {value} arrived after {after}: the response "
                "is not in the requested order or repeats members, so the read cannot resume safely"
            )
        return value

    def _record(self, raw: Raw) -> SourceRecord:
        site, key = mapping.text(raw, "siteid"), mapping.text(raw, self.spec.key_attribute)
        if not site or not key:
            raise SourceDataError(
                f"a {self.spec.structure} member arrived without siteid or {self.spec.key_attribute}"
            )
        remote_id = mapping.join_remote_id(site, key)
        try:
            data = self.spec.build(raw, self.ref)
            updated = mapping.last_change(raw, self.spec.children)
        except ValueError as exc:
            raise SourceDataError(f"{self.spec.structure} {remote_id!r} cannot be mapped: {exc}") from exc
        return SourceRecord(remote_id=remote_id, data=data, raw=dict(raw), remote_updated_at=updated)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def build_connector(options: MaximoOptions) -> Callable[[ConnectorContext], MaximoConnector]:
    def build(context: ConnectorContext) -> MaximoConnector:
        return MaximoConnector(context, options)

    return build
