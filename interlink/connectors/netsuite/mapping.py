"""Pure functions from NetSuite REST records to the unified model.

Remote ids are NetSuite internal ids. Decimals arrive as ``Decimal`` or
``int`` (the client parses JSON with ``parse_float=Decimal``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from interlink.model import Location, Part, PurchaseOrder, PurchaseOrderLine, Vendor
from interlink.model.types import Address, Ref, reference

RefMaker = Callable[[str, str], Ref]

# Purchase order statuses as the REST API names them, and their unified meaning.
ORDER_STATUSES = {
    "Pending Supervisor Approval": "pending_approval",
    "Pending Receipt": "ordered",
    "Rejected by Supervisor": "cancelled",
    "Partially Received": "partially_received",
    "Pending Billing/Partially Received": "partially_received",
    "Pending Bill": "received",
    "Fully Billed": "closed",
    "Closed": "closed",
}
# Currency records are referenced by name; these are NetSuite's names of common ISO 4217 currencies.
CURRENCY_CODES = {"US Dollar": "USD", "Euro": "EUR", "British pound": "GBP", "Canadian Dollar": "CAD"}


def ref_maker(connection_id: str) -> RefMaker:
    def make(entity: str, remote_id: str) -> Ref:
        return reference(connection_id, entity, remote_id)

    return make


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise TypeError("a float reached the mapping; parse JSON with parse_float=Decimal")
    return value if isinstance(value, Decimal) else Decimal(str(value))


def text(value: Any) -> str | None:
    cleaned = str(value).strip() if value is not None else ""
    return cleaned or None


def _ref_id(value: Any) -> str | None:
    return text(value.get("id")) if isinstance(value, Mapping) else None


def _ref_name(value: Any) -> str | None:
    return text(value.get("refName")) if isinstance(value, Mapping) else None


def address(raw: Any) -> Address | None:
    if not isinstance(raw, Mapping):
        return None
    country = raw.get("country")
    values = {
        "line1": text(raw.get("addr1")),
        "line2": text(raw.get("addr2")),
        "city": text(raw.get("city")),
        "region": text(raw.get("state")),
        "postal_code": text(raw.get("zip")),
        "country": _ref_id(country) if isinstance(country, Mapping) else text(country),
    }
    return Address(**values) if any(values.values()) else None


def map_vendor(raw: Mapping[str, Any], make_ref: RefMaker) -> Vendor:
    return Vendor(
        number=text(raw.get("entityId")),
        name=text(raw.get("companyName")) or text(raw.get("entityId")),
        email=text(raw.get("email")),
        phone=text(raw.get("phone")),
        website=text(raw.get("url")),
        currency=CURRENCY_CODES.get(_ref_name(raw.get("currency")) or ""),
        address=address(
            raw.get("defaultAddress") if isinstance(raw.get("defaultAddress"), Mapping) else None
        ),
        active=not raw.get("isInactive", False),
    )


def map_item(raw: Mapping[str, Any], make_ref: RefMaker) -> Part:
    return Part(
        number=text(raw.get("itemId")),
        name=text(raw.get("displayName")) or text(raw.get("itemId")),
        description=text(raw.get("purchaseDescription")),
        type="stock",
        unit=_ref_name(raw.get("stockUnit")),
        unit_cost=decimal(raw.get("cost")),
        category=_ref_name(raw.get("class")),
        manufacturer=text(raw.get("manufacturer")),
        manufacturer_part_number=text(raw.get("mpn")),
        active=not raw.get("isInactive", False),
    )


def map_location(raw: Mapping[str, Any], make_ref: RefMaker) -> Location:
    parent = _ref_id(raw.get("parent"))
    return Location(
        name=text(raw.get("name")),
        type="site",
        parent=make_ref("location", parent) if parent else None,
        address=address(raw.get("mainAddress")),
    )


def map_line(raw: Mapping[str, Any], order_id: str, make_ref: RefMaker) -> PurchaseOrderLine:
    quantity = decimal(raw.get("quantity"))
    received = decimal(raw.get("quantityReceived"))
    item = _ref_id(raw.get("item"))
    if raw.get("isClosed"):
        status = "cancelled" if not received else "received"
    elif received and quantity is not None and received >= quantity:
        status = "received"
    else:
        status = "partially_received" if received else "open"
    return PurchaseOrderLine(
        remote_id=f"{order_id}/{raw.get('line')}",
        line_number=raw.get("line"),
        part=make_ref("part", item) if item else None,
        description=text(raw.get("description")),
        quantity=quantity,
        received_quantity=received,
        unit=text(raw.get("units")),
        unit_price=decimal(raw.get("rate")),
        line_total=decimal(raw.get("amount")),
        expected_delivery_date=parse_date(raw.get("expectedReceiptDate")),
        status=status,
    )


def map_purchase_order(raw: Mapping[str, Any], make_ref: RefMaker) -> PurchaseOrder:
    """Map a purchase order fetched with ``expandSubResources=true``."""
    order_id = str(raw["id"])
    sublist = raw.get("item") if isinstance(raw.get("item"), Mapping) else {}
    lines = [map_line(line, order_id, make_ref) for line in (sublist or {}).get("items", [])]
    vendor = _ref_id(raw.get("entity"))
    site = _ref_id(raw.get("location"))
    remote_status = _ref_name(raw.get("status")) or _ref_id(raw.get("status"))
    return PurchaseOrder(
        number=text(raw.get("tranId")),
        description=text(raw.get("memo")),
        status=ORDER_STATUSES.get(remote_status or ""),
        remote_status=remote_status,
        vendor=make_ref("vendor", vendor) if vendor else None,
        site=make_ref("location", site) if site else None,
        order_date=parse_date(raw.get("tranDate")),
        expected_delivery_date=parse_date(raw.get("dueDate")),
        currency=CURRENCY_CODES.get(_ref_name(raw.get("currency")) or ""),
        total_net=decimal(raw.get("subtotal")),
        total_tax=decimal(raw.get("taxTotal")),
        total_gross=decimal(raw.get("total")),
        ship_to=address(raw.get("shippingAddress")),
        bill_to=address(raw.get("billingAddress")),
        lines=lines,
    )
