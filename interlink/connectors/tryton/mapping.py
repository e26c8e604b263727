"""Pure functions from decoded Tryton records to the unified model.

Remote ids are Tryton's integer ids as strings. Locations come from two
models, so their remote ids are ``stock.location/<id>`` and
``production.work.center/<id>``. Tryton does not flag parties as suppliers:
every party except the company's own is a vendor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from interlink.model import (
    Address,
    Location,
    Part,
    PurchaseOrder,
    PurchaseOrderLine,
    Ref,
    User,
    Vendor,
    WorkOrder,
    WorkOrderTask,
    reference,
)

Record = Mapping[str, Any]

PURCHASE_STATUSES = {
    "draft": "draft",
    "quotation": "pending_approval",
    "confirmed": "approved",
    "processing": "ordered",
    "done": "closed",
    "cancelled": "cancelled",
}
WORK_STATUSES = {
    "request": "open",
    "draft": "open",
    "waiting": "scheduled",
    "running": "in_progress",
    "finished": "completed",
    "done": "closed",
}
CYCLE_STATUSES = {"draft": "open", "running": "in_progress", "done": "completed", "cancelled": "skipped"}
PRODUCT_TYPES = {"goods": "stock", "assets": "non_stock", "service": "service"}
STOCK_LOCATION_TYPES = {"warehouse": "site", "storage": "storeroom"}

WORK_CENTER = "production.work.center"
STOCK_LOCATION = "stock.location"


def ref(connection_id: str, entity: str, remote_id: str | int | None) -> Ref | None:
    if remote_id is None:
        return None
    key = str(remote_id)
    return reference(connection_id, entity, key)


def _related_id(record: Record, field: str) -> int | None:
    value = record.get(field)
    if isinstance(value, Mapping):
        related = value.get("id")
        return related if isinstance(related, int) else None
    return value if isinstance(value, int) else None


def _related(record: Record, field: str, attribute: str) -> Any:
    value = record.get(field)
    return value.get(attribute) if isinstance(value, Mapping) else None


def _date(value: Any) -> date | None:
    return value if isinstance(value, date) and not isinstance(value, datetime) else None


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def latest(*moments: datetime | None) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return max(present) if present else None


def purchase_status(purchase: Record) -> str | None:
    state = purchase.get("state")
    if state == "processing":
        shipment = purchase.get("shipment_state")
        if shipment == "received":
            return "received"
        if shipment == "partially":
            return "partially_received"
    return PURCHASE_STATUSES.get(str(state))


def purchase_line(connection_id: str, line: Record, position: int) -> PurchaseOrderLine:
    quantity = _decimal(line.get("quantity"))
    return PurchaseOrderLine(
        remote_id=str(line["id"]),
        line_number=position,
        part=ref(connection_id, "part", _related_id(line, "product")),
        description=line.get("description") or None,
        quantity=quantity,
        unit=_related(line, "unit", "symbol"),
        unit_price=_decimal(line.get("unit_price")),
        line_total=_decimal(line.get("amount")),
        expected_delivery_date=_date(line.get("delivery_date")),
        status="cancelled" if line.get("purchase_state") == "cancelled" else None,
    )


def purchase_order(connection_id: str, purchase: Record, lines: Sequence[Record]) -> PurchaseOrder:
    """Map a purchase and its lines; comment lines carry no goods and are left out."""
    goods = sorted((line for line in lines if line.get("type", "line") == "line"), key=_line_order)
    return PurchaseOrder(
        number=purchase.get("number"),
        title=purchase.get("description") or None,
        description=purchase.get("description") or None,
        status=purchase_status(purchase),
        remote_status=purchase.get("state"),
        vendor=ref(connection_id, "vendor", _related_id(purchase, "party")),
        site=ref(
            connection_id, "location", _location_key(STOCK_LOCATION, _related_id(purchase, "warehouse"))
        ),
        order_date=_date(purchase.get("purchase_date")),
        expected_delivery_date=_date(purchase.get("delivery_date")),
        currency=_related(purchase, "currency", "code"),
        total_net=_decimal(purchase.get("untaxed_amount")),
        total_tax=_decimal(purchase.get("tax_amount")),
        total_gross=_decimal(purchase.get("total_amount")),
        payment_terms=_related(purchase, "payment_term", "name"),
        notes=purchase.get("comment") or None,
        lines=[purchase_line(connection_id, line, position) for position, line in enumerate(goods, start=1)],
    )


def _line_order(line: Record) -> tuple[int, int]:
    sequence = line.get("sequence")
    return (sequence if isinstance(sequence, int) else 0, int(line["id"]))


def _location_key(model: str, remote_id: int | None) -> str | None:
    return f"{model}/{remote_id}" if remote_id is not None else None


def vendor(party: Record, addresses: Sequence[Record]) -> Vendor:
    first = addresses[0] if addresses else None
    return Vendor(
        number=party.get("code"),
        name=party.get("name"),
        email=party.get("email") or None,
        phone=party.get("phone") or None,
        website=party.get("website") or None,
        tax_id=party.get("tax_identifier_code") or None,
        currency=_related(party, "supplier_currency", "code"),
        address=address(first) if first is not None else None,
        active=party.get("active"),
    )


def address(record: Record) -> Address:
    street = (record.get("street") or "").splitlines()
    return Address(
        line1=street[0] if street else None,
        line2=" ".join(street[1:]) or None,
        city=record.get("city") or None,
        region=_related(record, "subdivision", "name"),
        postal_code=record.get("postal_code") or None,
        country=_related(record, "country", "code"),
    )


def part(product: Record) -> Part:
    return Part(
        number=product.get("code") or None,
        name=product.get("name"),
        description=product.get("description") or None,
        type=PRODUCT_TYPES.get(str(product.get("type"))),
        unit=_related(product, "default_uom", "symbol"),
        unit_cost=_decimal(product.get("cost_price")),
        active=product.get("active"),
    )


def work_order(connection_id: str, work: Record, cycles: Sequence[Record]) -> WorkOrder:
    """Map a production work; its cycles (each a run of the operation) become tasks."""
    ordered = sorted(cycles, key=lambda cycle: int(cycle["id"]))
    actual = sum((_hours(cycle.get("duration")) or Decimal(0) for cycle in ordered), Decimal(0))
    center = _location_key(WORK_CENTER, _related_id(work, "work_center"))
    return WorkOrder(
        number=_related(work, "production", "number"),
        title=work.get("rec_name"),
        description=_related(work, "operation", "name"),
        status=WORK_STATUSES.get(str(work.get("state"))),
        remote_status=work.get("state"),
        type="other",
        location=ref(connection_id, "location", center),
        actual_hours=actual if ordered else None,
        tasks=[
            WorkOrderTask(
                remote_id=str(cycle["id"]),
                sequence=position,
                status=CYCLE_STATUSES.get(str(cycle.get("state"))),
                actual_hours=_hours(cycle.get("duration")),
            )
            for position, cycle in enumerate(ordered, start=1)
        ],
    )


def _hours(seconds: Any) -> Decimal | None:
    """Convert a duration in seconds (decoded from Tryton's timedelta) to hours."""
    if seconds is None:
        return None
    return (Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.0001")).normalize()


def stock_location(connection_id: str, location: Record) -> Location:
    parent = _related_id(location, "parent")
    return Location(
        name=location.get("name"),
        code=location.get("code") or None,
        type=STOCK_LOCATION_TYPES.get(str(location.get("type")), "other"),
        parent=ref(connection_id, "location", _location_key(STOCK_LOCATION, parent)) if parent else None,
        address=None,
    )


def work_center(connection_id: str, center: Record) -> Location:
    parent = _related_id(center, "parent")
    return Location(
        name=center.get("name"),
        type="area",
        parent=ref(connection_id, "location", _location_key(WORK_CENTER, parent)) if parent else None,
    )


def user(record: Record) -> User:
    return User(
        name=record.get("name"),
        email=record.get("email") or None,
        username=record.get("login"),
        active=record.get("active"),
    )
