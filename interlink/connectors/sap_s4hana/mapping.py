"""Pure functions from SAP S/4HANA OData v2 records to the unified model.

Inputs are entities as the JSON decoder returned them (decimals already
``Decimal`` or decimal strings, dates as ``/Date(ms)/``, empty character
fields as ``""``). Remote ids are the SAP keys as they are: ``PurchaseOrder``,
``MaintenanceOrder``, ``Supplier``, ``Product``, ``Equipment``,
``FunctionalLocation``; a line's remote id is its item or operation number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from interlink.connectors.odata import parse_json_date, parse_json_datetime_offset
from interlink.model import (
    Address,
    Asset,
    Location,
    Part,
    PurchaseOrder,
    PurchaseOrderLine,
    Ref,
    Vendor,
    WorkOrder,
    WorkOrderTask,
    reference,
)

Raw = Mapping[str, Any]
RefBuilder = Callable[[str, str], Ref]

# PurchasingProcessingStatus (EKKO-PROCSTAT) values of SAP's standard customizing.
_PO_PROCESSING_STATUS: dict[str, str] = {
    "01": "draft",
    "02": "ordered",
    "03": "pending_approval",
    "04": "pending_approval",
    "05": "ordered",
    "08": "cancelled",
}
# MaintPriority of the standard priority type PM: 1 very high ... 4 low.
_PRIORITY: dict[str, str] = {"1": "urgent", "2": "high", "3": "medium", "4": "low"}
# NOTE: order types are customer-configured; these are SAP's standard PM01 and PM02, anything else is "other".
_ORDER_TYPE: dict[str, str] = {"PM01": "corrective", "PM02": "preventive"}
_PRODUCT_TYPE: dict[str, str] = {"DIEN": "service", "NLAG": "non_stock"}
_WORK_UNITS_PER_HOUR: dict[str, Decimal] = {"H": Decimal(1), "HR": Decimal(1), "MIN": Decimal(60)}


def ref_builder(connection_id: str) -> RefBuilder:
    """Return a function that builds references to records of ``connection_id``."""

    def build(entity: str, remote_id: str) -> Ref:
        return reference(connection_id, entity, remote_id)

    return build


def text(raw: Raw, name: str) -> str | None:
    """Return a character field, with SAP's empty string as ``None``."""
    value = raw.get(name)
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def decimal(raw: Raw, name: str) -> Decimal | None:
    """Return an ``Edm.Decimal`` field; SAP sends them as strings, never as JSON numbers."""
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise ValueError(f"{name} arrived as a float ({value!r}); parse JSON with parse_float=Decimal")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{name} is not a decimal: {value!r}") from exc


def calendar_date(raw: Raw, name: str) -> date | None:
    value = raw.get(name)
    return parse_json_date(value) if value else None


def utc_time(raw: Raw, name: str) -> datetime | None:
    value = raw.get(name)
    return parse_json_datetime_offset(value) if value else None


def results(raw: Raw, navigation: str) -> list[Raw]:
    """Return the entities of an expanded to-many navigation; a deferred one has none."""
    value = raw.get(navigation)
    if isinstance(value, Mapping) and isinstance(value.get("results"), list):
        return list(value["results"])
    return []


def clean_raw(raw: Raw) -> dict[str, Any]:
    """Drop ``__metadata`` and deferred navigation links, which carry URLs and no data, at every level."""
    cleaned: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "__metadata":
            continue
        if isinstance(value, Mapping):
            if "__deferred" in value:
                continue
            if isinstance(value.get("results"), list):
                cleaned[name] = {"results": [clean_raw(item) for item in value["results"]]}
                continue
            cleaned[name] = clean_raw(value)
        else:
            cleaned[name] = value
    return cleaned


def purchase_order(raw: Raw, ref: RefBuilder) -> PurchaseOrder:
    items = sorted(
        results(raw, "to_PurchaseOrderItem"), key=lambda item: _as_int(item.get("PurchaseOrderItem"))
    )
    lines = [purchase_order_line(item, ref) for item in items]
    totals = [line.line_total for line in lines if line.line_total is not None and line.status != "cancelled"]
    supplier = text(raw, "Supplier")
    return PurchaseOrder(
        number=text(raw, "PurchaseOrder"),
        status=purchase_order_status(raw, items),
        remote_status=text(raw, "PurchasingProcessingStatus"),
        vendor=ref("vendor", supplier) if supplier else None,
        order_date=calendar_date(raw, "PurchaseOrderDate"),
        currency=text(raw, "DocumentCurrency"),
        total_net=sum(totals, Decimal(0)) if totals else None,
        payment_terms=text(raw, "PaymentTerms"),
        lines=lines,
    )


def purchase_order_status(raw: Raw, items: Iterable[Raw]) -> str | None:
    """Derive the unified status from the deletion code, then the items' delivery and invoicing, then
    the processing status."""
    if text(raw, "PurchasingDocumentDeletionCode"):
        return "cancelled"
    active = [item for item in items if not text(item, "PurchasingDocumentDeletionCode")]
    delivered = [bool(item.get("IsCompletelyDelivered")) for item in active]
    if active and all(delivered):
        invoiced = all(bool(item.get("IsFinallyInvoiced")) for item in active)
        return "closed" if invoiced else "received"
    if any(delivered):
        return "partially_received"
    return _PO_PROCESSING_STATUS.get(text(raw, "PurchasingProcessingStatus") or "")


def purchase_order_line(item: Raw, ref: RefBuilder) -> PurchaseOrderLine:
    quantity = decimal(item, "OrderQuantity")
    unit_price = _unit_price(decimal(item, "NetPriceAmount"), decimal(item, "NetPriceQuantity"))
    material = text(item, "Material")
    if text(item, "PurchasingDocumentDeletionCode"):
        status = "cancelled"
    elif item.get("IsCompletelyDelivered"):
        status = "received"
    else:
        status = "open"
    return PurchaseOrderLine(
        remote_id=text(item, "PurchaseOrderItem"),
        line_number=_as_int(item.get("PurchaseOrderItem")),
        part=ref("part", material) if material else None,
        description=text(item, "PurchaseOrderItemText"),
        quantity=quantity,
        unit=text(item, "PurchaseOrderQuantityUnit"),
        unit_price=unit_price,
        line_total=quantity * unit_price if quantity is not None and unit_price is not None else None,
        status=status,
    )


def _unit_price(amount: Decimal | None, per_quantity: Decimal | None) -> Decimal | None:
    """SAP prices per ``NetPriceQuantity`` units (the price unit); return the price of one unit."""
    if amount is None:
        return None
    if per_quantity is None or per_quantity in (0, 1):
        return amount
    return amount / per_quantity


def _as_int(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def work_order(raw: Raw, ref: RefBuilder) -> WorkOrder:
    operations = sorted(
        results(raw, "to_MaintenanceOrderOperation"),
        key=lambda op: (
            _as_int(op.get("MaintenanceOrderOperation")),
            str(op.get("MaintenanceOrderSubOperation")),
        ),
    )
    tasks = [work_order_task(operation) for operation in operations]
    equipment = text(raw, "Equipment")
    location = text(raw, "FunctionalLocation")
    priority = text(raw, "MaintPriority")
    order_type = text(raw, "MaintenanceOrderType")
    return WorkOrder(
        number=text(raw, "MaintenanceOrder"),
        title=text(raw, "MaintenanceOrderDesc"),
        status=work_order_status(text(raw, "SystemStatusText")),
        remote_status=text(raw, "SystemStatusText"),
        priority=_PRIORITY.get(priority or ""),
        remote_priority=priority,
        type=(_ORDER_TYPE.get(order_type, "other") if order_type else None),
        asset=ref("asset", equipment) if equipment else None,
        location=ref("location", location) if location else None,
        scheduled_start_at=utc_time(raw, "MaintOrdSchedldBscStrtDateTime"),
        due_date=calendar_date(raw, "MaintOrdBasicEndDate"),
        estimated_hours=_total(task.estimated_hours for task in tasks),
        actual_hours=_total(task.actual_hours for task in tasks),
        tasks=tasks,
    )


def work_order_status(system_status: str | None) -> str | None:
    """Map the system status line (``REL  CNF  MANC``...) by its most telling status."""
    statuses = set((system_status or "").split())
    for code, status in (
        ("DLFL", "cancelled"),
        ("CLSD", "closed"),
        ("TECO", "completed"),
        ("CNF", "in_progress"),
        ("PCNF", "in_progress"),
        ("REL", "scheduled"),
        ("CRTD", "open"),
    ):
        if code in statuses:
            return status
    return None


def work_order_task(operation: Raw) -> WorkOrderTask:
    number = text(operation, "MaintenanceOrderOperation") or ""
    sub_operation = text(operation, "MaintenanceOrderSubOperation")
    statuses = set((text(operation, "SystemStatusText") or "").split())
    if operation.get("IsMarkedForDeletion"):
        status = "skipped"
    elif "CNF" in statuses:
        status = "completed"
    elif "PCNF" in statuses:
        status = "in_progress"
    else:
        status = "open"
    work_unit = text(operation, "MaintOrdOpWorkDurationUnit")
    return WorkOrderTask(
        remote_id=f"{number}/{sub_operation}" if sub_operation else number,
        sequence=_as_int(number),
        description=text(operation, "OperationDescription"),
        status=status,
        estimated_hours=_hours(decimal(operation, "MaintOrdOperationWorkDuration"), work_unit),
        actual_hours=_hours(decimal(operation, "ActualWorkQuantity"), work_unit),
    )


def _hours(value: Decimal | None, unit: str | None) -> Decimal | None:
    per_hour = _WORK_UNITS_PER_HOUR.get((unit or "").upper())
    if value is None or per_hour is None:
        return None
    return value / per_hour


def _total(values: Iterable[Decimal | None]) -> Decimal | None:
    present = [value for value in values if value is not None]
    return sum(present, Decimal(0)) if present else None


def vendor(raw: Raw) -> Vendor:
    addresses = results(raw, "to_BusinessPartnerAddress")
    address = addresses[0] if addresses else None
    return Vendor(
        number=text(raw, "Supplier"),
        name=text(raw, "BusinessPartnerFullName") or text(raw, "OrganizationBPName1"),
        email=_default_value(address, "to_EmailAddress", "IsDefaultEmailAddress", "EmailAddress"),
        phone=_default_value(address, "to_PhoneNumber", "IsDefaultPhoneNumber", "InternationalPhoneNumber"),
        address=_address(address) if address else None,
        active=not (raw.get("BusinessPartnerIsBlocked") or raw.get("IsMarkedForArchiving")),
    )


def _default_value(address: Raw | None, navigation: str, default_flag: str, field: str) -> str | None:
    if address is None:
        return None
    entries = results(address, navigation)
    chosen = next((entry for entry in entries if entry.get(default_flag)), entries[0] if entries else None)
    return text(chosen, field) if chosen else None


def _address(raw: Raw) -> Address:
    street = " ".join(part for part in (text(raw, "StreetName"), text(raw, "HouseNumber")) if part)
    return Address(
        line1=street or None,
        city=text(raw, "CityName"),
        region=text(raw, "Region"),
        postal_code=text(raw, "PostalCode"),
        country=text(raw, "Country"),
    )


def part(raw: Raw) -> Part:
    descriptions = results(raw, "to_Description")
    english = next((row for row in descriptions if row.get("Language") == "EN"), None)
    chosen = english or (descriptions[0] if descriptions else None)
    product_type = text(raw, "ProductType")
    return Part(
        number=text(raw, "Product"),
        name=text(chosen, "ProductDescription") if chosen else None,
        type=(_PRODUCT_TYPE.get(product_type, "stock") if product_type else None),
        unit=text(raw, "BaseUnit"),
        category=text(raw, "ProductGroup"),
        manufacturer_part_number=text(raw, "ProductManufacturerNumber"),
        active=not raw.get("IsMarkedForDeletion"),
    )


def asset(raw: Raw, ref: RefBuilder) -> Asset:
    location = text(raw, "FunctionalLocation")
    parent = text(raw, "SuperordinateEquipment")
    if raw.get("EquipmentIsMarkedForDeletion"):
        status, remote_status = "retired", "EquipmentIsMarkedForDeletion"
    elif raw.get("EquipmentIsInactive"):
        status, remote_status = "inactive", "EquipmentIsInactive"
    else:
        status, remote_status = "active", None
    started = calendar_date(raw, "OperationStartDate")
    return Asset(
        name=text(raw, "EquipmentName"),
        number=text(raw, "Equipment"),
        status=status,
        remote_status=remote_status,
        category=text(raw, "TechnicalObjectType"),
        location=ref("location", location) if location else None,
        parent=ref("asset", parent) if parent else None,
        manufacturer=text(raw, "AssetManufacturerName"),
        model=text(raw, "ManufacturerPartTypeName"),
        serial_number=text(raw, "ManufacturerSerialNumber") or text(raw, "SerialNumber"),
        # NOTE: OperationStartDate is a calendar date in the plant's terms; it becomes midnight UTC here.
        installed_at=datetime(started.year, started.month, started.day, tzinfo=UTC) if started else None,
        purchase_cost=decimal(raw, "AcquisitionValue"),
        currency=text(raw, "Currency"),
    )


def location(raw: Raw, ref: RefBuilder) -> Location:
    superior = text(raw, "SuperiorFunctionalLocation")
    street = " ".join(part for part in (text(raw, "StreetName"), text(raw, "HouseNumber")) if part)
    has_address = any(text(raw, name) for name in ("StreetName", "CityName", "PostalCode", "Country"))
    return Location(
        name=text(raw, "FunctionalLocationName"),
        code=text(raw, "FunctionalLocationLabelName") or text(raw, "FunctionalLocation"),
        parent=ref("location", superior) if superior else None,
        address=Address(
            line1=street or None,
            city=text(raw, "CityName"),
            region=text(raw, "Region"),
            postal_code=text(raw, "PostalCode"),
            country=text(raw, "Country"),
        )
        if has_address
        else None,
    )
