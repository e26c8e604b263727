"""The seeded records of the Business Central sandbox and the changes made to them.

Records are kept as the API answers them: camelCase properties, decimals as
``Decimal``, times as ``datetime``. Every change stamps ``lastModifiedDateTime``
with the injected clock and moves the record's ETag, except one, on purpose:
changing a purchase order line leaves its order's ``lastModifiedDateTime`` and
ETag as they were, while the order totals (computed on read) move. The
purchaseOrderLine resource has no ``lastModifiedDateTime`` of its own, so a
client that follows the order's timestamp alone misses line-only changes.
"""

from __future__ import annotations

import base64
import bisect
import random
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

Clock = Callable[[], datetime]
Record = dict[str, Any]

ENTITY_SETS = ("vendors", "items", "locations", "purchaseOrders", "purchaseOrderLines")
ORDER_STATUSES = ("Draft", "In Review", "Open")

# Decimals are immutable, so seeded records share these instead of holding a copy each.
_ZERO = Decimal(0)
_ZERO_CENTS = Decimal("0.00")
_TAX_PERCENTS = (Decimal("0"), Decimal("7"), Decimal("19"))

_CITIES = (
    ("Chicago", "IL", "US", "61236"),
    ("Atlanta", "GA", "US", "31772"),
    ("Reading", "", "GB", "RG6 1WG"),
    ("Hamburg", "", "DE", "20097"),
    ("Lyon", "", "FR", "69001"),
)
_VENDOR_WORDS = (
    "Fabrikam",
    "Contoso",
    "Northwind",
    "Litware",
    "Proseware",
    "Adatum",
    "Tailspin",
    "Woodgrove",
)
_ITEM_WORDS = (
    "Bearing",
    "Valve",
    "Gasket",
    "Filter",
    "Pump seal",
    "Sensor",
    "Fuse",
    "Belt",
    "Nozzle",
    "Relay",
)


def format_time(value: datetime) -> str:
    """Format a time as Business Central does: UTC with milliseconds and a ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def make_etag(version: int, record_id: str) -> str:
    """Return a weak ETag in Business Central's shape (a base64 token inside ``W/"..."``)."""
    token = f"'{len(record_id)};{version}{zlib.crc32(record_id.encode()) % 100000:05d};00;'"
    return 'W/"' + base64.b64encode(token.encode()).decode() + '"'


@dataclass
class BusinessCentralData:
    """One company's records, keyed by entity set and record id."""

    clock: Clock
    company: Record
    records: dict[str, dict[str, Record]] = field(default_factory=lambda: {name: {} for name in ENTITY_SETS})
    versions: dict[str, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    # Lines keyed by their order's id, then by line id, in insertion order, so that reading
    # an order does not scan every line of the company.
    lines_by_order: dict[str, dict[str, Record]] = field(default_factory=dict, init=False)
    # Records of each entity set sorted by id, built on first use and dropped when the set
    # gains or loses a record. Ids never change, so edits keep it valid.
    _sorted: dict[str, list[Record]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for line in self.records["purchaseOrderLines"].values():
            self.lines_by_order.setdefault(line["documentId"], {})[line["id"]] = line

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def etag(self, record_id: str) -> str:
        return make_etag(self.versions.get(record_id, 1), record_id)

    def touch(self, record: Record, *, stamp: bool = True) -> None:
        """Move the record's ETag and, when ``stamp`` is set, its ``lastModifiedDateTime``."""
        self.versions[record["id"]] = self.versions.get(record["id"], 1) + 1
        if stamp and "lastModifiedDateTime" in record:
            record["lastModifiedDateTime"] = self.clock()

    def lines_of(self, order_id: str) -> list[Record]:
        lines = self.lines_by_order.get(order_id, {}).values()
        return sorted(lines, key=lambda line: line["sequence"])

    def sorted_records(self, entity_set: str) -> list[Record]:
        """Return the records of ``entity_set`` sorted by id. Callers must not change the list."""
        cached = self._sorted.get(entity_set)
        if cached is None:
            cached = sorted(self.records[entity_set].values(), key=lambda record: record["id"])
            self._sorted[entity_set] = cached
        return cached

    def first_after(self, entity_set: str, record_id: str) -> int:
        """Return the position in ``sorted_records(entity_set)`` of the first record whose id is greater."""
        ordered = self.sorted_records(entity_set)
        return bisect.bisect_right(ordered, record_id, key=lambda record: record["id"])

    def add(self, entity_set: str, record: Record) -> None:
        """Store a new record with ETag version 1."""
        self.records[entity_set][record["id"]] = record
        self.versions[record["id"]] = 1
        self._sorted.pop(entity_set, None)
        if entity_set == "purchaseOrderLines":
            self.lines_by_order.setdefault(record["documentId"], {})[record["id"]] = record

    def remove(self, entity_set: str, record_id: str) -> None:
        """Remove one record. Removing an order leaves its lines to the caller."""
        record = self.records[entity_set].pop(record_id)
        self._sorted.pop(entity_set, None)
        if entity_set == "purchaseOrderLines":
            siblings = self.lines_by_order.get(record["documentId"], {})
            siblings.pop(record_id, None)
            if not siblings:
                self.lines_by_order.pop(record["documentId"], None)

    def order_totals(self, order_id: str, lines: list[Record] | None = None) -> dict[str, Decimal]:
        """Sum the amounts of the order's lines. ``lines``, when given, must be ``lines_of(order_id)``."""
        if lines is None:
            lines = self.lines_of(order_id)
        net = sum((line["amountExcludingTax"] for line in lines), Decimal("0.00"))
        tax = sum((line["totalTaxAmount"] for line in lines), Decimal("0.00"))
        return {"totalAmountExcludingTax": net, "totalTaxAmount": tax, "totalAmountIncludingTax": net + tax}

    def recompute_line(self, line: Record) -> None:
        amount = (line["quantity"] * line["directUnitCost"] - line["discountAmount"]).quantize(
            Decimal("0.01")
        )
        tax = (amount * line["taxPercent"] / 100).quantize(Decimal("0.01"))
        line["amountExcludingTax"] = amount
        line["totalTaxAmount"] = tax
        line["amountIncludingTax"] = amount + tax
        line["netAmount"] = amount


def seed(*, size: int, seed_value: int, clock: Clock, epoch: datetime) -> BusinessCentralData:
    """Build a company with ``size`` purchase orders and vendors, items and locations in proportion.

    Every value comes from ``random.Random(seed_value)`` and ``epoch``, so the
    same arguments always give the same records.
    """
    rng = random.Random(seed_value)
    company = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "systemVersion": "25.0.23364.24389",
        "name": "CRONUS USA, Inc.",
        "displayName": "CRONUS USA, Inc.",
        "businessProfileId": "",
    }
    data = BusinessCentralData(clock=clock, company=company, rng=rng)

    def stamp() -> datetime:
        return epoch - timedelta(seconds=rng.randrange(60, 60 * 24 * 3600), milliseconds=rng.randrange(1000))

    for number in range(max(2, size // 20)):
        _add(data, "locations", _location(data, number, stamp()))
    for number in range(max(3, size // 5)):
        _add(data, "vendors", _vendor(data, number, stamp()))
    for number in range(max(5, size // 2)):
        _add(data, "items", _item(data, number, stamp()))
    vendors = list(data.records["vendors"].values())
    items = list(data.records["items"].values())
    locations = list(data.records["locations"].values())
    for number in range(size):
        order = _order(data, number, rng.choice(vendors), stamp())
        _add(data, "purchaseOrders", order)
        for sequence in range(1, rng.randint(1, 4) + 1):
            line = _line(data, order, sequence, rng.choice(items), rng.choice(locations))
            _add(data, "purchaseOrderLines", line)
    return data


def _add(data: BusinessCentralData, entity_set: str, record: Record) -> None:
    data.add(entity_set, record)


def _address(rng: random.Random, prefix: str = "") -> Record:
    """Return ``addressLine1`` ... ``postalCode``, or ``{prefix}AddressLine1`` ... ``{prefix}PostCode``."""
    city, state, country, postal = rng.choice(_CITIES)
    values = (f"{rng.randint(1, 999)} Main Street", "", city, state, country, postal)
    if not prefix:
        names: tuple[str, ...] = ("addressLine1", "addressLine2", "city", "state", "country", "postalCode")
    else:
        names = tuple(
            prefix + name for name in ("AddressLine1", "AddressLine2", "City", "State", "Country", "PostCode")
        )
    return dict(zip(names, values, strict=True))


def _location(data: BusinessCentralData, number: int, modified: datetime) -> Record:
    code = "MAIN" if number == 0 else f"WH{number:02d}"
    return {
        "id": data.new_id(),
        "code": code,
        "displayName": "Main Warehouse" if number == 0 else f"Warehouse {number}",
        "contact": "Eleanor Faulkner",
        **_address(data.rng),
        "phoneNumber": f"+1-555-01{number:02d}",
        "email": "",
        "website": "",
        "lastModifiedDateTime": modified,
    }


def _vendor(data: BusinessCentralData, number: int, modified: datetime) -> Record:
    rng = data.rng
    name = f"{rng.choice(_VENDOR_WORDS)} {('Supply', 'Industrial', 'Parts', 'Tools')[number % 4]} {number}"
    return {
        "id": data.new_id(),
        "number": f"V{10000 + number * 10}",
        "displayName": name,
        **_address(rng),
        "phoneNumber": f"+1-555-02{number % 100:02d}",
        "email": f"orders{number}@example.com",
        "website": f"www.vendor{number}.example.com",
        "taxRegistrationNumber": f"TX{rng.randrange(10**8):08d}",
        "currencyId": "00000000-0000-0000-0000-000000000000",
        "currencyCode": rng.choice(("", "", "EUR")),
        "irs1099Code": "",
        "paymentTermsId": "00000000-0000-0000-0000-000000000000",
        "paymentMethodId": "00000000-0000-0000-0000-000000000000",
        "taxLiable": False,
        "blocked": rng.choice((" ", " ", " ", "All")),
        "balance": _ZERO_CENTS,
        "lastModifiedDateTime": modified,
    }


def _item(data: BusinessCentralData, number: int, modified: datetime) -> Record:
    rng = data.rng
    kind = rng.choice(("Inventory", "Inventory", "Service", "Non-Inventory"))
    return {
        "id": data.new_id(),
        "number": f"{1000 + number}-S",
        "displayName": f"{rng.choice(_ITEM_WORDS)} {number}",
        "displayName2": "",
        "type": kind,
        "itemCategoryId": "00000000-0000-0000-0000-000000000000",
        "itemCategoryCode": rng.choice(("MRO", "SPARES", "")),
        "blocked": rng.random() < 0.1,
        "gtin": "",
        "inventory": Decimal(rng.randint(0, 500)),
        "unitPrice": Decimal(rng.randint(100, 90000)) / 100,
        "priceIncludesTax": False,
        "unitCost": Decimal(rng.randint(50, 60000)) / 100,
        "taxGroupId": "00000000-0000-0000-0000-000000000000",
        "taxGroupCode": "",
        "baseUnitOfMeasureId": "00000000-0000-0000-0000-000000000000",
        "baseUnitOfMeasureCode": "PCS" if kind != "Service" else "HOUR",
        "generalProductPostingGroupCode": "RETAIL",
        "inventoryPostingGroupCode": "RESALE",
        "lastModifiedDateTime": modified,
    }


def _order(data: BusinessCentralData, number: int, vendor: Record, modified: datetime) -> Record:
    rng = data.rng
    order_date = modified.date() - timedelta(days=rng.randint(0, 5))
    return {
        "id": data.new_id(),
        "number": f"{106001 + number}",
        "orderDate": order_date,
        "postingDate": order_date,
        "vendorId": vendor["id"],
        "vendorNumber": vendor["number"],
        "vendorName": vendor["displayName"],
        "payToName": vendor["displayName"],
        "payToVendorId": vendor["id"],
        "payToVendorNumber": vendor["number"],
        "shipToName": "CRONUS USA, Inc.",
        "shipToContact": "",
        "buyFromAddressLine1": vendor["addressLine1"],
        "buyFromAddressLine2": "",
        "buyFromCity": vendor["city"],
        "buyFromCountry": vendor["country"],
        "buyFromState": vendor["state"],
        "buyFromPostCode": vendor["postalCode"],
        **_address(rng, "shipTo"),
        "payToAddressLine1": vendor["addressLine1"],
        "payToAddressLine2": "",
        "payToCity": vendor["city"],
        "payToCountry": vendor["country"],
        "payToState": vendor["state"],
        "payToPostCode": vendor["postalCode"],
        "shortcutDimension1Code": "",
        "shortcutDimension2Code": "",
        "currencyId": "00000000-0000-0000-0000-000000000000",
        "currencyCode": vendor["currencyCode"] or "USD",
        "pricesIncludeTax": False,
        "paymentTermsId": "00000000-0000-0000-0000-000000000000",
        "shipmentMethodId": "00000000-0000-0000-0000-000000000000",
        "purchaser": rng.choice(("", "AH", "MH")),
        "requestedReceiptDate": order_date + timedelta(days=rng.randint(7, 30)),
        "discountAmount": _ZERO_CENTS,
        "discountAppliedBeforeTax": True,
        "fullyReceived": False,
        "status": rng.choice(ORDER_STATUSES),
        "lastModifiedDateTime": modified,
    }


def _line(data: BusinessCentralData, order: Record, sequence: int, item: Record, location: Record) -> Record:
    rng = data.rng
    quantity = Decimal(rng.randint(1, 40))
    received = rng.choice((_ZERO, _ZERO, quantity, Decimal(rng.randint(0, int(quantity)))))
    line = {
        "id": data.new_id(),
        "documentId": order["id"],
        "sequence": sequence * 10000,
        "itemId": item["id"],
        "accountId": "00000000-0000-0000-0000-000000000000",
        "lineType": "Item",
        "lineObjectNumber": item["number"],
        "description": item["displayName"],
        "description2": "",
        "unitOfMeasureId": "00000000-0000-0000-0000-000000000000",
        "unitOfMeasureCode": item["baseUnitOfMeasureCode"],
        "quantity": quantity,
        "directUnitCost": item["unitCost"],
        "discountAmount": _ZERO_CENTS,
        "discountPercent": _ZERO,
        "discountAppliedBeforeTax": False,
        "taxCode": "",
        "taxPercent": rng.choice(_TAX_PERCENTS),
        "invoiceDiscountAllocation": _ZERO_CENTS,
        "expectedReceiptDate": order["requestedReceiptDate"],
        "receivedQuantity": received,
        "invoicedQuantity": _ZERO,
        "invoiceQuantity": _ZERO,
        "receiveQuantity": quantity - received,
        "itemVariantId": "00000000-0000-0000-0000-000000000000",
        "locationId": location["id"],
    }
    data.recompute_line(line)
    return line


# Values of these exact types pass through to_json_ready unchanged.
_JSON_READY_TYPES = frozenset({str, int, bool, Decimal, float, type(None)})


def to_json_ready(value: Any) -> Any:
    """Convert times and dates inside a record to the strings the API sends."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        # Testing the exact type here saves a function call for each plain value.
        return {
            key: item if type(item) in _JSON_READY_TYPES else to_json_ready(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [to_json_ready(item) for item in value]
    return value


def create_record(data: BusinessCentralData, entity_set: str, fields: Record) -> Record:
    """Add a record built like the seeded ones, stamped now, with ``fields`` overriding its values.

    A new purchase order line leaves its order's ``lastModifiedDateTime`` as it was.
    """
    now = data.clock()
    number = len(data.records[entity_set]) + 1
    record: Record
    if entity_set == "vendors":
        record = _vendor(data, number, now)
    elif entity_set == "items":
        record = _item(data, number, now)
    elif entity_set == "locations":
        record = _location(data, number, now)
    elif entity_set == "purchaseOrders":
        vendor = data.records["vendors"][fields.get("vendorId") or next(iter(data.records["vendors"]))]
        record = _order(data, len(data.records["purchaseOrders"]) + 1000, vendor, now)
    else:
        order = data.records["purchaseOrders"][fields["documentId"]]
        item = data.records["items"][fields.get("itemId") or next(iter(data.records["items"]))]
        location = next(iter(data.records["locations"].values()))
        sequence = len(data.lines_of(order["id"])) + 1
        record = _line(data, order, sequence, item, location)
    for name, value in fields.items():
        if name != "id" and name in record:
            record[name] = Decimal(str(value)) if isinstance(record[name], Decimal) else value
    if entity_set == "purchaseOrderLines":
        data.recompute_line(record)
    _add(data, entity_set, record)
    return record


def delete_record(data: BusinessCentralData, entity_set: str, record_id: str) -> None:
    """Delete a record; deleting a purchase order deletes its lines too."""
    data.remove(entity_set, record_id)
    if entity_set == "purchaseOrders":
        for line in data.lines_of(record_id):
            data.remove("purchaseOrderLines", line["id"])
