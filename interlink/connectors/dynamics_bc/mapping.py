"""Pure functions from Business Central API v2.0 records to the unified model.

Remote ids are the records' ``id`` GUIDs. Decimals arrive as ``Decimal`` (the
client parses JSON with ``parse_float=Decimal``) or ``int`` and never pass
through a float. Business Central writes an empty date as ``0001-01-01``;
those become ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from interlink.model import Location, Part, PurchaseOrder, PurchaseOrderLine, Vendor
from interlink.model.types import Address, Ref, reference

RefMaker = Callable[[str, str], Ref]
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"

# Business Central's purchase order statuses, and what each means in the unified model.
ORDER_STATUSES = {
    "Draft": "draft",
    "In Review": "pending_approval",
    "Open": "ordered",
    "Released": "ordered",
}
ITEM_TYPES = {"Inventory": "stock", "Non-Inventory": "non_stock", "Service": "service"}


def ref_maker(connection_id: str) -> RefMaker:
    """Return a function building references to this connection's records."""

    def make(entity: str, remote_id: str) -> Ref:
        return reference(connection_id, entity, remote_id)

    return make


def parse_time(value: Any) -> datetime | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    return date.fromisoformat(str(value)[:10])


def decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise TypeError("a float reached the mapping; parse JSON with parse_float=Decimal")
    return Decimal(str(value)) if not isinstance(value, Decimal) else value


def text(value: Any) -> str | None:
    cleaned = str(value).strip() if value is not None else ""
    return cleaned or None


def _guid(value: Any) -> str | None:
    return None if not value or value == EMPTY_GUID else str(value)


def address(raw: Mapping[str, Any], prefix: str = "") -> Address | None:
    """Build an address from ``addressLine1`` ... or, with a prefix, ``{prefix}AddressLine1`` ... fields."""
    if prefix:
        names = [
            prefix + name for name in ("AddressLine1", "AddressLine2", "City", "State", "PostCode", "Country")
        ]
    else:
        names = ["addressLine1", "addressLine2", "city", "state", "postalCode", "country"]
    values = [text(raw.get(name)) for name in names]
    if not any(values):
        return None
    line1, line2, city, region, postal_code, country = values
    return Address(
        line1=line1, line2=line2, city=city, region=region, postal_code=postal_code, country=country
    )


def map_vendor(raw: Mapping[str, Any]) -> Vendor:
    return Vendor(
        number=text(raw.get("number")),
        name=text(raw.get("displayName")),
        email=text(raw.get("email")),
        phone=text(raw.get("phoneNumber")),
        website=text(raw.get("website")),
        tax_id=text(raw.get("taxRegistrationNumber")),
        currency=text(raw.get("currencyCode")),
        address=address(raw),
        # "blocked" is " " (not blocked), "Payment" or "All".
        active=text(raw.get("blocked")) is None,
    )


def map_item(raw: Mapping[str, Any]) -> Part:
    return Part(
        number=text(raw.get("number")),
        name=text(raw.get("displayName")),
        description=text(raw.get("displayName2")),
        type=ITEM_TYPES.get(str(raw.get("type"))),
        unit=text(raw.get("baseUnitOfMeasureCode")),
        unit_cost=decimal(raw.get("unitCost")),
        category=text(raw.get("itemCategoryCode")),
        active=not raw.get("blocked", False),
    )


def map_location(raw: Mapping[str, Any]) -> Location:
    return Location(
        name=text(raw.get("displayName")), code=text(raw.get("code")), type="site", address=address(raw)
    )


def map_purchase_order_line(raw: Mapping[str, Any], make_ref: RefMaker) -> PurchaseOrderLine:
    quantity = decimal(raw.get("quantity"))
    received = decimal(raw.get("receivedQuantity"))
    item_id = _guid(raw.get("itemId")) if raw.get("lineType") == "Item" else None
    return PurchaseOrderLine(
        remote_id=str(raw["id"]),
        line_number=raw.get("sequence"),
        part=make_ref("part", item_id) if item_id else None,
        description=text(raw.get("description")),
        quantity=quantity,
        received_quantity=received,
        unit=text(raw.get("unitOfMeasureCode")),
        unit_price=decimal(raw.get("directUnitCost")),
        discount=decimal(raw.get("discountAmount")),
        tax_amount=decimal(raw.get("totalTaxAmount")),
        line_total=decimal(raw.get("amountExcludingTax")),
        expected_delivery_date=parse_date(raw.get("expectedReceiptDate")),
        status=line_status(quantity, received),
    )


def line_status(quantity: Decimal | None, received: Decimal | None) -> str:
    if quantity is None or received is None or received <= 0:
        return "open"
    return "received" if received >= quantity else "partially_received"


def map_purchase_order(raw: Mapping[str, Any], make_ref: RefMaker) -> PurchaseOrder:
    """Map an order fetched with ``$expand=purchaseOrderLines``."""
    lines = [map_purchase_order_line(line, make_ref) for line in raw.get("purchaseOrderLines") or []]
    vendor_id = _guid(raw.get("vendorId"))
    locations = {_guid(line.get("locationId")) for line in raw.get("purchaseOrderLines") or []}
    site = locations.pop() if len(locations) == 1 else None
    return PurchaseOrder(
        number=text(raw.get("number")),
        status=order_status(raw, lines),
        remote_status=text(raw.get("status")),
        vendor=make_ref("vendor", vendor_id) if vendor_id else None,
        site=make_ref("location", site) if site else None,
        order_date=parse_date(raw.get("orderDate")),
        expected_delivery_date=parse_date(raw.get("requestedReceiptDate")),
        currency=text(raw.get("currencyCode")),
        total_net=decimal(raw.get("totalAmountExcludingTax")),
        total_tax=decimal(raw.get("totalTaxAmount")),
        total_gross=decimal(raw.get("totalAmountIncludingTax")),
        ship_to=address(raw, "shipTo"),
        bill_to=address(raw, "payTo"),
        lines=lines,
    )


def order_status(raw: Mapping[str, Any], lines: list[PurchaseOrderLine]) -> str | None:
    """Derive the unified status: receipt progress first, then Business Central's own status."""
    if raw.get("fullyReceived"):
        return "received"
    if any(line.status in ("partially_received", "received") for line in lines):
        return "partially_received"
    return ORDER_STATUSES.get(str(raw.get("status")))
