"""Pure functions from Maximo OSLC JSON members (``lean=1``) to the unified model.

Remote ids join a record's site and key with ``/``, each part percent-encoded
(``BEDFORD/1001``, ``BEDFORD/PMP%2F100``), so they split back without ambiguity.
Statuses are mapped by their internal value (``status_maxvalue``) where the
member has one, because the external value is the customer's synonym.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, unquote

from interlink.model import Asset, Location, Ref, WorkOrder, WorkOrderTask, reference

Raw = Mapping[str, Any]
RefBuilder = Callable[[str, str], Ref]

WorkOrderStatus = Literal["open", "scheduled", "in_progress", "on_hold", "completed", "cancelled", "closed"]
TaskStatus = Literal["open", "in_progress", "completed", "skipped"]
Priority = Literal["low", "medium", "high", "urgent"]
WorkType = Literal["corrective", "preventive", "inspection", "emergency", "other"]
AssetStatus = Literal["active", "inactive", "under_maintenance", "retired"]
LocationType = Literal["site", "building", "area", "storeroom", "other"]

# Internal values of the WOSTATUS synonym domain.
_WORK_ORDER_STATUS: dict[str, WorkOrderStatus] = {
    "WAPPR": "open",
    "WSCH": "open",
    "APPR": "scheduled",
    "WMATL": "on_hold",
    "WPCOND": "on_hold",
    "INPRG": "in_progress",
    "COMP": "completed",
    "CLOSE": "closed",
    "CAN": "cancelled",
}
_TASK_STATUS: dict[str, TaskStatus] = {
    "INPRG": "in_progress",
    "COMP": "completed",
    "CLOSE": "completed",
    "CAN": "skipped",
}
# NOTE: priorities and work types are customer-configured; 1 is taken as the highest priority, a
# common setup that a customer's Maximo may not follow.
_PRIORITY: dict[int, Priority] = {1: "urgent", 2: "high", 3: "medium", 4: "low", 5: "low"}
_WORK_TYPE: dict[str, WorkType] = {"CM": "corrective", "PM": "preventive", "EM": "emergency"}
# Internal values of the asset status synonym domain.
_ASSET_STATUS: dict[str, AssetStatus] = {
    "OPERATING": "active",
    "ACTIVE": "active",
    "LIMITEDUSE": "active",
    "NOT READY": "inactive",
    "IMPORTED": "inactive",
    "SEALED": "inactive",
    "BROKEN": "under_maintenance",
    "DECOMMISSIONED": "retired",
    "MISSING": "retired",
}
_LOCATION_TYPE: dict[str, LocationType] = {"STOREROOM": "storeroom", "OPERATING": "area"}


def join_remote_id(*parts: str) -> str:
    """Join key parts into one remote id, percent-encoding each so that ``/`` separates them alone."""
    return "/".join(quote(part, safe="") for part in parts)


def split_remote_id(remote_id: str) -> list[str]:
    return [unquote(part) for part in remote_id.split("/")]


def ref_builder(connection_id: str) -> RefBuilder:
    """Return a function that builds references to records of ``connection_id``."""

    def build(entity: str, remote_id: str) -> Ref:
        return reference(connection_id, entity, remote_id)

    return build


def text(raw: Raw, name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def number(raw: Raw, name: str) -> Decimal | None:
    """Return a numeric attribute; it must have been decoded with ``parse_float=Decimal``."""
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, float):
        raise ValueError(f"{name} arrived as a float ({value!r}); parse JSON with parse_float=Decimal")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"{name} is not a number: {value!r}")
    return Decimal(value)


def moment(raw: Raw, name: str) -> datetime | None:
    """Return a time attribute; Maximo writes them in ISO 8601 with the server's offset."""
    value = raw.get(name)
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"{name} has no UTC offset: {value!r}")
    return parsed


def calendar_day(raw: Raw, name: str) -> date | None:
    """Return the date part of a time attribute as the server shows it, without shifting zones."""
    parsed = moment(raw, name)
    return parsed.date() if parsed else None


def internal_status(raw: Raw) -> str | None:
    return text(raw, "status_maxvalue") or text(raw, "status")


def last_change(raw: Raw, children: Iterable[str] = ()) -> datetime | None:
    """Return the latest ``changedate`` of the member and of its inlined child rows."""
    changes = [moment(raw, "changedate")]
    for child in children:
        changes.extend(moment(row, "changedate") for row in raw.get(child) or [])
    present = [change for change in changes if change is not None]
    return max(present) if present else None


def work_order(raw: Raw, ref: RefBuilder) -> WorkOrder:
    site = text(raw, "siteid") or ""
    asset = text(raw, "assetnum")
    location = text(raw, "location")
    parent = text(raw, "parent")
    priority = number(raw, "wopriority")
    work_type = text(raw, "worktype")
    tasks = sorted(raw.get("woactivity") or [], key=lambda task: number(task, "taskid") or 0)
    return WorkOrder(
        number=text(raw, "wonum"),
        title=text(raw, "description"),
        description=text(raw, "description_longdescription"),
        status=_WORK_ORDER_STATUS.get(internal_status(raw) or ""),
        remote_status=text(raw, "status"),
        priority=_PRIORITY.get(int(priority)) if priority is not None else None,
        remote_priority=str(priority) if priority is not None else None,
        type=_WORK_TYPE.get(work_type, "other") if work_type else None,
        asset=ref("asset", join_remote_id(site, asset)) if asset else None,
        location=ref("location", join_remote_id(site, location)) if location else None,
        parent=ref("work_order", join_remote_id(site, parent)) if parent else None,
        scheduled_start_at=moment(raw, "schedstart"),
        due_date=calendar_day(raw, "targcompdate"),
        started_at=moment(raw, "actstart"),
        completed_at=moment(raw, "actfinish"),
        estimated_hours=number(raw, "estdur"),
        actual_hours=number(raw, "actlabhrs"),
        tasks=[work_order_task(task) for task in tasks],
    )


def work_order_task(raw: Raw) -> WorkOrderTask:
    sequence = number(raw, "taskid")
    return WorkOrderTask(
        remote_id=text(raw, "wonum"),
        sequence=int(sequence) if sequence is not None else None,
        description=text(raw, "description"),
        status=_TASK_STATUS.get(internal_status(raw) or "", "open"),
        estimated_hours=number(raw, "estdur"),
        actual_hours=number(raw, "actlabhrs"),
    )


def asset(raw: Raw, ref: RefBuilder) -> Asset:
    site = text(raw, "siteid") or ""
    location = text(raw, "location")
    parent = text(raw, "parent")
    return Asset(
        name=text(raw, "description"),
        number=text(raw, "assetnum"),
        status=_ASSET_STATUS.get(internal_status(raw) or ""),
        remote_status=text(raw, "status"),
        category=text(raw, "assettype"),
        location=ref("location", join_remote_id(site, location)) if location else None,
        parent=ref("asset", join_remote_id(site, parent)) if parent else None,
        manufacturer=text(raw, "manufacturer"),
        serial_number=text(raw, "serialnum"),
        installed_at=moment(raw, "installdate"),
        purchase_cost=number(raw, "purchaseprice"),
    )


def location(raw: Raw, ref: RefBuilder) -> Location:
    site = text(raw, "siteid") or ""
    hierarchy = raw.get("lochierarchy") or []
    primary = next((row for row in hierarchy if row.get("systemid") == "PRIMARY"), None)
    parent = text(primary, "parent") if primary else None
    location_type = text(raw, "type")
    return Location(
        name=text(raw, "description"),
        code=text(raw, "location"),
        type=_LOCATION_TYPE.get(location_type, "other") if location_type else None,
        parent=ref("location", join_remote_id(site, parent)) if parent else None,
    )
