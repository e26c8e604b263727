"""The seeded records of the NetSuite sandbox and the changes made to them.

Records are kept in the REST record API's JSON shape. ``lastModifiedDate`` has
minute precision, as NetSuite returns it, and every change, including one to
an item line of a purchase order, stamps the whole record. Filters on dates
compare whole days in the account's time zone (see ``queries.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

Clock = Callable[[], datetime]
Record = dict[str, Any]

RECORD_TYPES = ("purchaseOrder", "vendor", "inventoryItem", "location")
PO_STATUSES = (
    "Pending Supervisor Approval",
    "Pending Receipt",
    "Partially Received",
    "Fully Billed",
    "Closed",
)
_CURRENCIES = (("1", "US Dollar"), ("2", "Euro"), ("3", "British pound"))
_CITIES = (
    ("Grand Prairie", "TX", "US", "75050"),
    ("Portland", "OR", "US", "97201"),
    ("Leeds", "", "GB", "LS1 4AP"),
)


def minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class NetSuiteData:
    """One account's records, keyed by record type and internal id."""

    clock: Clock
    records: dict[str, dict[str, Record]] = field(default_factory=lambda: {name: {} for name in RECORD_TYPES})
    next_id: int = 100
    rng: random.Random = field(default_factory=random.Random)

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    def stamp(self, record: Record) -> None:
        record["lastModifiedDate"] = minute(self.clock())


def ref(record_type: str, record: Record, name_field: str) -> Record:
    return {"id": record["id"], "refName": record.get(name_field) or record["id"], "_type": record_type}


def seed(*, size: int, seed_value: int, clock: Clock, epoch: datetime) -> NetSuiteData:
    """Build an account with ``size`` purchase orders and vendors, items and locations in proportion."""
    rng = random.Random(seed_value)
    data = NetSuiteData(clock=clock, rng=rng)

    def stamp() -> datetime:
        return minute(epoch - timedelta(minutes=rng.randrange(1, 60 * 24 * 60)))

    for number in range(max(2, size // 20)):
        _put(data, "location", _location(data, number, stamp()))
    for number in range(max(3, size // 5)):
        _put(data, "vendor", _vendor(data, number, stamp()))
    for number in range(max(5, size // 2)):
        _put(data, "inventoryItem", _item(data, number, stamp()))
    for number in range(size):
        _put(data, "purchaseOrder", _order(data, number, stamp()))
    return data


def _put(data: NetSuiteData, record_type: str, record: Record) -> None:
    data.records[record_type][record["id"]] = record


def _location(data: NetSuiteData, number: int, modified: datetime) -> Record:
    city, state, country, postal = data.rng.choice(_CITIES)
    return {
        "id": data.new_id(),
        "name": "Main Warehouse" if number == 0 else f"Warehouse {number}",
        "isInactive": False,
        "mainAddress": {
            "addr1": f"{100 + number} Refuge Way",
            "city": city,
            "state": state,
            "zip": postal,
            "country": {"id": country, "refName": country},
        },
        "createdDate": modified - timedelta(days=30),
        "lastModifiedDate": modified,
    }


def _vendor(data: NetSuiteData, number: int, modified: datetime) -> Record:
    rng = data.rng
    currency_id, currency_name = rng.choice(_CURRENCIES)
    return {
        "id": data.new_id(),
        "entityId": f"VEND{number:04d}",
        "companyName": f"{rng.choice(('Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli'))} Supply {number}",
        "email": f"ap{number}@vendor.example.com",
        "phone": f"(469) 555-{number % 10000:04d}",
        "url": f"https://vendor{number}.example.com",
        "currency": {"id": currency_id, "refName": currency_name},
        "isInactive": rng.random() < 0.1,
        "dateCreated": modified - timedelta(days=40),
        "lastModifiedDate": modified,
    }


def _item(data: NetSuiteData, number: int, modified: datetime) -> Record:
    rng = data.rng
    return {
        "id": data.new_id(),
        "itemId": f"PART-{number:05d}",
        "displayName": f"{rng.choice(('Spindle', 'Collet', 'Clamp', 'Router bit', 'Dust shoe'))} {number}",
        "purchaseDescription": f"Replacement part {number}",
        "cost": Decimal(rng.randint(100, 500000)) / 100,
        "stockUnit": {"id": "1", "refName": "Each"},
        "class": {"id": "15", "refName": rng.choice(("Machine : CNC", "Spares"))},
        "manufacturer": rng.choice(("Laguna", "Bosch", "")),
        "mpn": f"MPN{rng.randrange(10**6):06d}",
        "isInactive": False,
        "createdDate": modified - timedelta(days=50),
        "lastModifiedDate": modified,
    }


def _order(data: NetSuiteData, number: int, modified: datetime) -> Record:
    rng = data.rng
    vendor = rng.choice(list(data.records["vendor"].values()))
    location = rng.choice(list(data.records["location"].values()))
    tran_date = modified.date() - timedelta(days=rng.randint(0, 3))
    order: Record = {
        "id": data.new_id(),
        "tranId": f"PO{45000 + number}",
        "tranDate": tran_date,
        "dueDate": tran_date + timedelta(days=rng.randint(7, 30)),
        "entity": ref("vendor", vendor, "companyName"),
        "currency": dict(vendor["currency"]),
        "location": ref("location", location, "name"),
        "status": {"id": (status := rng.choice(PO_STATUSES)), "refName": status},
        "memo": rng.choice(("", "Rush order", "Quarterly restock")),
        "createdDate": modified - timedelta(days=2),
        "lastModifiedDate": modified,
        "lines": [],
    }
    items = list(data.records["inventoryItem"].values())
    for line_number in range(1, rng.randint(1, 4) + 1):
        item = rng.choice(items)
        quantity = Decimal(rng.randint(1, 20))
        order["lines"].append(
            {
                "line": line_number,
                "item": ref("inventoryItem", item, "displayName"),
                "description": item["purchaseDescription"],
                "quantity": quantity,
                "quantityReceived": rng.choice((Decimal(0), quantity)),
                "quantityBilled": Decimal(0),
                "rate": item["cost"],
                "units": "Each",
                "isClosed": False,
            }
        )
    recompute(order)
    return order


def recompute(order: Record) -> None:
    for line in order["lines"]:
        line["amount"] = (line["quantity"] * line["rate"]).quantize(Decimal("0.01"))
    order["subtotal"] = sum((line["amount"] for line in order["lines"]), Decimal("0.00"))
    order["taxTotal"] = (order["subtotal"] * Decimal("0.0825")).quantize(Decimal("0.01"))
    order["total"] = order["subtotal"] + order["taxTotal"]


def create_record(data: NetSuiteData, record_type: str, fields: Record) -> Record:
    """Add a record built like the seeded ones, stamped now, with ``fields`` overriding top-level values."""
    now = minute(data.clock())
    number = len(data.records[record_type]) + 1
    builders = {"location": _location, "vendor": _vendor, "inventoryItem": _item, "purchaseOrder": _order}
    record = builders[record_type](data, number, now)
    apply_changes(data, record_type, record, fields)
    _put(data, record_type, record)
    return record


def apply_changes(data: NetSuiteData, record_type: str, record: Record, fields: Record) -> None:
    """Change top-level fields and, for a purchase order, ``lines`` given as ``{"<line>": {...}}``.

    Any change stamps ``lastModifiedDate``: NetSuite saves a transaction and its lines together.
    """
    for name, value in fields.items():
        if name == "lines" and record_type == "purchaseOrder":
            for line in record["lines"]:
                for key, new in value.get(str(line["line"]), {}).items():
                    line[key] = Decimal(str(new)) if isinstance(line.get(key), Decimal) else new
            recompute(record)
        elif name not in ("id", "lastModifiedDate"):
            current = record.get(name)
            record[name] = Decimal(str(value)) if isinstance(current, Decimal) else value
    data.stamp(record)
