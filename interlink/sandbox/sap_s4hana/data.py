"""The SAP sandbox's records: deterministic seeding, typed values, and change stamping.

Values are kept as Python types by Edm type: ``str`` (``""`` for an empty
character field, as SAP sends it), ``Decimal``, ``bool``, naive ``datetime``
for ``Edm.DateTime``, aware UTC ``datetime`` for ``Edm.DateTimeOffset`` and
``time`` for ``Edm.Time``. Change stamps have a resolution of one second,
like the short time stamps (``TZNTSTMPS``) SAP keeps them in.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from interlink.sandbox.sap_s4hana.schema import ENTITY_SETS, EntitySet

Clock = Callable[[], datetime]
Row = dict[str, Any]
Key = tuple[Any, ...]

FAR_FUTURE = datetime(9999, 12, 31)
SANDBOX_USER = "CC0000000001"

_COMPANY_WORDS = ("Acme", "Nordic", "Pacific", "Atlas", "Summit", "Keystone", "Harbor", "Vertex", "Delta")
_COMPANY_KINDS = ("Industrial Supply", "Bearings", "Pumps & Valves", "Fasteners", "Electric", "Hydraulics")
_CITIES = (("Palo Alto", "CA", "US", "94304"), ("Walldorf", "BW", "DE", "69190"), ("Lyon", "", "FR", "69002"))
_PRODUCT_NAMES = (
    "Ball bearing 6204",
    "Hex bolt M8x40",
    "Hydraulic hose 1/2 in",
    "Pump seal kit",
    "V-belt A42",
    "Lubricant ISO VG 68",
    "Contactor 24V",
    "Pressure gauge 0-10 bar",
)
_PRODUCT_TYPES = ("HAWA", "ROH", "ERSA", "ERSA", "DIEN", "NLAG")
_STATUS_TEXTS = ("CRTD MANC NMAT", "REL  MANC NMAT", "REL  PCNF", "REL  CNF  MANC", "TECO CNF", "CLSD CNF")
_OPERATIONS = ("Isolate and lock out", "Inspect", "Replace worn parts", "Test run", "Clean up")


@dataclass
class SapData:
    """All records of the sandbox, by entity set and key."""

    clock: Clock
    system_zone: tzinfo
    tables: dict[str, dict[Key, Row]] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def rows(self, entity_set: str) -> list[Row]:
        return list(self.tables.setdefault(entity_set, {}).values())

    def get(self, entity_set: str, key: Key) -> Row | None:
        return self.tables.setdefault(entity_set, {}).get(key)

    def put(self, entity_set: EntitySet, row: Row) -> None:
        self.tables.setdefault(entity_set.name, {})[key_of(entity_set, row)] = row

    def related(self, join: tuple[tuple[str, str], ...], target: str, row: Mapping[str, Any]) -> list[Row]:
        """Return the rows of ``target`` whose join properties equal ``row``'s."""
        return [
            candidate
            for candidate in self.rows(target)
            if all(candidate.get(theirs) == row.get(ours) for ours, theirs in join)
        ]

    def insert(self, entity_set: EntitySet, values: Mapping[str, Any]) -> Row:
        """Add a record with defaults for every property it does not name, and stamp its change."""
        row = {name: _default(edm_type) for name, edm_type in entity_set.properties.items()}
        row.update(values)
        missing = [name for name in entity_set.keys if row.get(name) in (None, "")]
        if missing:
            raise ValueError(f"key property {missing[0]} of {entity_set.name} is missing")
        if self.get(entity_set.name, key_of(entity_set, row)) is not None:
            raise ValueError(f"{entity_set.name} {key_of(entity_set, row)} already exists")
        self.put(entity_set, row)
        self.stamp(entity_set, row, created=True)
        return row

    def update(self, entity_set: EntitySet, key: Key, values: Mapping[str, Any]) -> Row:
        """Change a record's properties (keys excepted) and stamp its change."""
        row = self.get(entity_set.name, key)
        if row is None:
            raise LookupError(f"{entity_set.name} {key} not found")
        changed_keys = [name for name in entity_set.keys if name in values and values[name] != row[name]]
        if changed_keys:
            raise ValueError(f"key property {changed_keys[0]} of {entity_set.name} cannot change")
        row.update(values)
        self.stamp(entity_set, row)
        return row

    def delete(self, entity_set: EntitySet, key: Key) -> None:
        """Remove a record and, through to-many navigations, its dependent records."""
        row = self.tables.setdefault(entity_set.name, {}).pop(key, None)
        if row is None:
            raise LookupError(f"{entity_set.name} {key} not found")
        for navigation in entity_set.navigations:
            if navigation.many:
                target = ENTITY_SETS[navigation.target]
                for child in self.related(navigation.join, navigation.target, row):
                    self.tables[target.name].pop(key_of(target, child), None)
        self._stamp_parent(entity_set, row)

    def stamp(self, entity_set: EntitySet, row: Row, *, created: bool = False) -> None:
        """Move the change stamps that the set's records carry, or those of the parent it stamps."""
        now = self.now()
        local = now.astimezone(self.system_zone).replace(tzinfo=None)
        for name in entity_set.change_stamps:
            edm_type = entity_set.properties[name]
            if edm_type == "Edm.DateTimeOffset":
                row[name] = now
            elif edm_type == "Edm.DateTime":
                row[name] = datetime.combine(local.date(), time())
            elif edm_type == "Edm.Time":
                row[name] = local.time()
        if entity_set.change_stamps and "LastChangedByUser" in entity_set.properties:
            row["LastChangedByUser"] = SANDBOX_USER
        if created and "CreationDate" in entity_set.properties and row.get("CreationDate") is None:
            row["CreationDate"] = datetime.combine(local.date(), time())
        self._stamp_parent(entity_set, row)

    def _stamp_parent(self, entity_set: EntitySet, row: Row) -> None:
        if entity_set.stamps_parent is None:
            return
        parent_set = ENTITY_SETS[entity_set.stamps_parent]
        for parent in self.related(entity_set.parent_join, parent_set.name, row):
            self.stamp(parent_set, parent)


def key_of(entity_set: EntitySet, row: Mapping[str, Any]) -> Key:
    return tuple(row[name] for name in entity_set.keys)


def _default(edm_type: str) -> Any:
    if edm_type == "Edm.String":
        return ""
    if edm_type == "Edm.Boolean":
        return False
    return None


def coerce_values(entity_set: EntitySet, values: Mapping[str, Any]) -> Row:
    """Convert JSON values (decimals and times as strings) to the sandbox's typed values."""
    typed: Row = {}
    for name, value in values.items():
        edm_type = entity_set.properties.get(name)
        if edm_type is None:
            valid = ", ".join(entity_set.properties)
            raise ValueError(f"{name} is not a property of {entity_set.name}; valid properties: {valid}")
        typed[name] = _coerce(name, edm_type, value)
    return typed


def _coerce(name: str, edm_type: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if edm_type == "Edm.String":
            return str(value)
        if edm_type == "Edm.Boolean":
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if edm_type == "Edm.Decimal":
            return Decimal(str(value))
        if edm_type in ("Edm.Int32", "Edm.Int16", "Edm.Byte"):
            return int(value)
        if edm_type == "Edm.DateTimeOffset":
            moment = datetime.fromisoformat(str(value))
            if moment.tzinfo is None:
                raise ValueError("expected an ISO 8601 time with an offset")
            return moment.astimezone(UTC)
        if edm_type == "Edm.DateTime":
            return datetime.fromisoformat(str(value)).replace(tzinfo=None)
        if edm_type == "Edm.Time":
            return time.fromisoformat(str(value))
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"invalid value {value!r} for {name} ({edm_type}): {exc}") from exc
    return value


def seed_data(*, size: int, seed: int, clock: Clock, system_zone: tzinfo) -> SapData:
    """Build the seeded records: ``size`` purchase and maintenance orders each, and their master data."""
    rng = random.Random(seed)
    data = SapData(clock=clock, system_zone=system_zone)
    base = data.now().replace(hour=0, minute=0, second=0)
    seeder = _Seeder(rng, data, base)
    suppliers = seeder.business_partners(max(3, size // 4))
    products = seeder.products(max(6, size // 2))
    locations = seeder.functional_locations(max(4, size // 8))
    equipment = seeder.equipment(max(4, size // 4), locations)
    seeder.purchase_orders(size, suppliers, products)
    seeder.maintenance_orders(size, equipment, locations)
    return data


class _Seeder:
    def __init__(self, rng: random.Random, data: SapData, base: datetime) -> None:
        self.rng = rng
        self.data = data
        self.base = base

    def past(self, max_days: int) -> datetime:
        """Return a time between one hour and ``max_days`` days before the seeding day began."""
        return self.base - timedelta(seconds=self.rng.randint(3600, max_days * 86_400))

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.data.system_zone).replace(tzinfo=None)

    def day(self, moment: datetime) -> datetime:
        return datetime.combine(self.local(moment).date(), time())

    def business_partners(self, count: int) -> list[str]:
        suppliers: list[str] = []
        for index in range(count):
            number = str(17300001 + index)
            # Supplier numbers usually equal the partner number; one differs, as number ranges allow.
            supplier = str(1000001 + index) if index == 2 else number
            name = "O'Brien Industrial Supply" if index == 1 else self._company_name()
            created = self.past(300)
            changed = None if index % 2 == 0 else created + timedelta(days=self.rng.randint(1, 20))
            self.data.put(
                ENTITY_SETS["A_BusinessPartner"],
                {
                    "BusinessPartner": number,
                    "Customer": "",
                    "Supplier": supplier,
                    "BusinessPartnerCategory": "2",
                    "BusinessPartnerFullName": name,
                    "BusinessPartnerName": name,
                    "CreatedByUser": SANDBOX_USER,
                    "CreationDate": self.day(created),
                    "CreationTime": self.local(created).time(),
                    "LastChangeDate": self.day(changed) if changed else None,
                    "LastChangeTime": self.local(changed).time() if changed else None,
                    "LastChangedByUser": SANDBOX_USER if changed else "",
                    "OrganizationBPName1": name,
                    "SearchTerm1": name.split()[0].upper()[:20],
                    "BusinessPartnerIsBlocked": index == count - 1 and count > 3,
                    "IsMarkedForArchiving": False,
                },
            )
            self._address(number, index)
            suppliers.append(supplier)
        return suppliers

    def _company_name(self) -> str:
        return f"{self.rng.choice(_COMPANY_WORDS)} {self.rng.choice(_COMPANY_KINDS)}"

    def _address(self, partner: str, index: int) -> None:
        address_id = str(22000 + index)
        city, region, country, postal_code = _CITIES[index % len(_CITIES)]
        self.data.put(
            ENTITY_SETS["A_BusinessPartnerAddress"],
            {
                "BusinessPartner": partner,
                "AddressID": address_id,
                "CityName": city,
                "Country": country,
                "HouseNumber": str(self.rng.randint(1, 400)),
                "PostalCode": postal_code,
                "Region": region,
                "StreetName": self.rng.choice(("Deer Creek Road", "Dietmar-Hopp-Allee", "Rue Garibaldi")),
                "Language": "EN",
            },
        )
        self.data.put(
            ENTITY_SETS["A_AddressEmailAddress"],
            {
                "AddressID": address_id,
                "Person": "",
                "OrdinalNumber": "1",
                "IsDefaultEmailAddress": True,
                "EmailAddress": f"orders{index}@supplier{partner}.example",
            },
        )
        self.data.put(
            ENTITY_SETS["A_AddressPhoneNumber"],
            {
                "AddressID": address_id,
                "Person": "",
                "OrdinalNumber": "1",
                "DestinationLocationCountry": country,
                "IsDefaultPhoneNumber": True,
                "PhoneNumber": f"555-{1000 + index}",
                "InternationalPhoneNumber": f"+1 555-{1000 + index}",
            },
        )

    def products(self, count: int) -> list[str]:
        products: list[str] = []
        for index in range(count):
            # Keys with a slash and with a quote exercise the escaping of keys in URLs and filters.
            number = {1: "RM/1001", 2: "O'RING-12"}.get(index, f"TG-{index + 1:04d}")
            changed = self.past(250)
            created = changed - timedelta(days=self.rng.randint(0, 60))
            product_type = self.rng.choice(_PRODUCT_TYPES)
            self.data.put(
                ENTITY_SETS["A_Product"],
                {
                    "Product": number,
                    "ProductType": product_type,
                    "CreationDate": self.day(created),
                    "CreatedByUser": SANDBOX_USER,
                    "LastChangeDate": self.day(changed),
                    "LastChangedByUser": SANDBOX_USER,
                    "LastChangeDateTime": changed,
                    "IsMarkedForDeletion": index == count - 1,
                    "ProductGroup": self.rng.choice(("L001", "L002", "P001")),
                    "BaseUnit": "H" if product_type == "DIEN" else self.rng.choice(("PC", "KG", "EA")),
                    "GrossWeight": Decimal(self.rng.randint(1, 20_000)) / 1000,
                    "WeightUnit": "KG",
                    "ProductManufacturerNumber": f"MPN-{self.rng.randint(10000, 99999)}",
                    "ManufacturerNumber": "",
                },
            )
            for language, prefix in (("EN", ""), ("DE", "DE ")):
                self.data.put(
                    ENTITY_SETS["A_ProductDescription"],
                    {
                        "Product": number,
                        "Language": language,
                        "ProductDescription": prefix + _PRODUCT_NAMES[index % len(_PRODUCT_NAMES)],
                    },
                )
            products.append(number)
        return products

    def functional_locations(self, count: int) -> list[str]:
        locations: list[str] = []
        for index in range(count):
            superior = "" if index == 0 else locations[(index - 1) // 3]
            label = "1710-SPA" if index == 0 else f"{superior}-{index:02d}"
            city, region, country, postal_code = _CITIES[0]
            self.data.put(
                ENTITY_SETS["FunctionalLocation"],
                {
                    "FunctionalLocation": label,
                    "FunctionalLocationLabelName": label,
                    "FunctionalLocationName": "Plant 1710 site" if index == 0 else f"Production area {index}",
                    "FunctionalLocationCategory": "M",
                    "SuperiorFunctionalLocation": superior,
                    "MaintenancePlant": "1710",
                    "CityName": city,
                    "PostalCode": postal_code,
                    "StreetName": "Deer Creek Road",
                    "HouseNumber": "3410",
                    "Region": region,
                    "Country": country,
                    "LastChangeDateTime": self.past(300),
                    "FuncnlLocIsMarkedForDeletion": False,
                    "FunctionalLocationIsActive": True,
                },
            )
            locations.append(label)
        return locations

    def equipment(self, count: int, locations: list[str]) -> list[str]:
        numbers: list[str] = []
        for index in range(count):
            number = str(217100001 + index)
            acquired = self.past(900)
            self.data.put(
                ENTITY_SETS["Equipment"],
                {
                    "Equipment": number,
                    "ValidityEndDate": FAR_FUTURE,
                    "ValidityStartDate": self.day(acquired),
                    "EquipmentName": self.rng.choice(("Centrifugal pump", "Control valve", "Conveyor drive")),
                    "EquipmentCategory": "M",
                    "TechnicalObjectType": self.rng.choice(("PUMP", "VALVE", "MOTOR")),
                    "AcquisitionValue": Decimal(self.rng.randint(100_000, 5_000_000)) / 100,
                    "Currency": "USD",
                    "AcquisitionDate": self.day(acquired),
                    "AssetManufacturerName": self.rng.choice(("KSB", "Grundfos", "Siemens")),
                    "ManufacturerPartTypeName": f"M-{self.rng.randint(100, 999)}",
                    "ManufacturerSerialNumber": f"SN{self.rng.randint(100000, 999999)}",
                    "MaintenancePlant": "1710",
                    "FunctionalLocation": self.rng.choice(locations),
                    "SuperordinateEquipment": numbers[0] if index == count - 1 and numbers else "",
                    "SerialNumber": "",
                    "OperationStartDate": self.day(acquired + timedelta(days=10)),
                    "CreationDate": self.day(acquired),
                    "LastChangedByUser": SANDBOX_USER,
                    "LastChangeDateTime": self.past(300),
                    "EquipmentIsMarkedForDeletion": False,
                    "EquipmentIsInactive": index == 2,
                },
            )
            numbers.append(number)
        return numbers

    def purchase_orders(self, count: int, suppliers: list[str], products: list[str]) -> None:
        for index in range(count):
            number = str(4500000001 + index)
            changed = self.past(200)
            created = changed - timedelta(days=self.rng.randint(0, 30))
            currency = self.rng.choice(("USD", "USD", "EUR"))
            deleted = index % 11 == 10
            self.data.put(
                ENTITY_SETS["A_PurchaseOrder"],
                {
                    "PurchaseOrder": number,
                    "CompanyCode": "1710",
                    "PurchaseOrderType": "NB",
                    "PurchasingDocumentDeletionCode": "L" if deleted else "",
                    "PurchasingProcessingStatus": self.rng.choice(("01", "02", "05", "05")),
                    "CreatedByUser": SANDBOX_USER,
                    "CreationDate": self.day(created),
                    "LastChangeDateTime": changed,
                    "Supplier": self.rng.choice(suppliers),
                    "Language": "EN",
                    "PaymentTerms": self.rng.choice(("0001", "0004", "")),
                    "PurchasingOrganization": "1710",
                    "PurchasingGroup": "001",
                    "PurchaseOrderDate": self.day(created),
                    "DocumentCurrency": currency,
                    "ExchangeRate": Decimal("1.00000"),
                    "IncotermsClassification": "EXW",
                    "ReleaseIsNotCompleted": False,
                },
            )
            for position in range(1, self.rng.randint(1, 4) + 1):
                self._purchase_order_item(number, position, currency, products, deleted)

    def _purchase_order_item(
        self, number: str, position: int, currency: str, products: list[str], deleted: bool
    ) -> None:
        product = self.rng.choice(products)
        descriptions = self.data.related(
            (("Product", "Product"),), "A_ProductDescription", {"Product": product}
        )
        text = next((row["ProductDescription"] for row in descriptions if row["Language"] == "EN"), "")
        delivered = self.rng.random() < 0.3
        self.data.put(
            ENTITY_SETS["A_PurchaseOrderItem"],
            {
                "PurchaseOrder": number,
                "PurchaseOrderItem": str(position * 10),
                "PurchasingDocumentDeletionCode": "L" if deleted else "",
                "PurchaseOrderItemText": text,
                "Plant": "1710",
                "StorageLocation": "171A",
                "MaterialGroup": "L001",
                "OrderQuantity": Decimal(self.rng.randint(1, 250_000)) / 1000,
                "PurchaseOrderQuantityUnit": self.rng.choice(("PC", "KG", "EA")),
                "DocumentCurrency": currency,
                "NetPriceAmount": Decimal(self.rng.randint(10, 12_345_678)) / 100,
                "NetPriceQuantity": Decimal(self.rng.choice((1, 1, 1, 100))),
                "TaxCode": "I1",
                "IsCompletelyDelivered": delivered,
                "IsFinallyInvoiced": delivered and self.rng.random() < 0.5,
                "GoodsReceiptIsExpected": True,
                "InvoiceIsExpected": True,
                "Material": product,
            },
        )

    def maintenance_orders(self, count: int, equipment: list[str], locations: list[str]) -> None:
        for index in range(count):
            number = str(4000001 + index)
            changed = self.past(200)
            start = changed + timedelta(days=self.rng.randint(-5, 30))
            self.data.put(
                ENTITY_SETS["MaintenanceOrder"],
                {
                    "MaintenanceOrder": number,
                    "MaintenanceOrderType": self.rng.choice(("PM01", "PM02", "PM03")),
                    "MaintenanceOrderDesc": self.rng.choice(
                        ("Mechanical inspection for pump", "Replace valve seal", "Quarterly lubrication")
                    ),
                    "MaintOrdBasicStartDateTime": start,
                    "MaintOrdBasicEndDateTime": start + timedelta(hours=self.rng.randint(2, 48)),
                    "MaintOrdBasicStartDate": self.day(start),
                    "MaintOrdBasicEndDate": self.day(start + timedelta(days=2)),
                    "MaintOrdSchedldBscStrtDateTime": start + timedelta(hours=6),
                    "MaintenanceNotification": str(10000001 + index) if index % 3 == 0 else "",
                    "MainWorkCenter": "RES-0300",
                    "MaintenancePlanningPlant": "1710",
                    "MaintenancePlant": "1710",
                    "Equipment": self.rng.choice(equipment),
                    "EquipmentName": "",
                    "FunctionalLocation": self.rng.choice(locations),
                    "MaintenanceActivityType": "YB4",
                    "MaintPriority": self.rng.choice(("1", "2", "3", "4", "")),
                    "MaintPriorityType": "PM",
                    "MaintOrdPersonResponsible": "",
                    "LastChangeDateTime": changed,
                    "CreatedByUser": SANDBOX_USER,
                    "SystemStatusText": self.rng.choice(_STATUS_TEXTS),
                    "UserStatusText": "",
                },
            )
            for position in range(1, self.rng.randint(1, 3) + 1):
                self._operation(number, position)

    def _operation(self, number: str, position: int) -> None:
        work = Decimal(self.rng.randint(5, 160)) / 10
        self.data.put(
            ENTITY_SETS["MaintenanceOrderOperation"],
            {
                "MaintenanceOrder": number,
                "MaintenanceOrderOperation": f"{position * 10:04d}",
                "MaintenanceOrderSubOperation": "",
                "OperationControlKey": "YBM1",
                "WorkCenter": "RES-0100",
                "Plant": "1710",
                "OperationDescription": _OPERATIONS[(position - 1) % len(_OPERATIONS)],
                "MaintOrderOperationDuration": work,
                "MaintOrdOperationDurationUnit": "H",
                "MaintOrdOperationWorkDuration": work,
                "MaintOrdOpWorkDurationUnit": "H",
                "ActualWorkQuantity": Decimal("0.000"),
                "IsMarkedForDeletion": False,
                "SystemStatusText": "REL",
            },
        )
