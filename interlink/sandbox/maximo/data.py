"""The Maximo sandbox's records: object structures, deterministic seeding, change stamps.

Rows keep Python values by attribute type: ``str``, ``int``, ``Decimal``,
``bool`` and aware UTC ``datetime``. ``changedate`` has a resolution of one
second and moves only on the row that changed: a task (a work order row with
``istask``) changes without moving its parent's ``changedate``. Every change
takes the next ``_rowstamp``, as Maximo's row stamps do.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

Clock = Callable[[], datetime]
Row = dict[str, Any]

STRING, INTEGER, DECIMAL, DATETIME, BOOLEAN = "string", "integer", "decimal", "datetime", "boolean"
SANDBOX_USER = "MXINTADM"
SITE = "BEDFORD"
ORGANIZATION = "EAGLENA"


@dataclass(frozen=True)
class Child:
    """A child object inlined in a member, such as a work order's ``woactivity`` tasks."""

    table: str
    # Pairs of (child attribute, parent attribute) that join the child rows to their parent.
    join: tuple[tuple[str, str], ...]
    condition: Callable[[Mapping[str, Any]], bool] = lambda row: True


@dataclass(frozen=True)
class ObjectStructure:
    """An API-enabled object structure: its main object's table, key, attributes and children."""

    name: str
    table: str
    key: tuple[str, ...]
    id_attribute: str
    attributes: dict[str, str]
    children: dict[str, Child] = field(default_factory=dict)
    # Descriptions of the status values (the synonym domain), returned as ``status_description``.
    statuses: dict[str, str] = field(default_factory=dict)


WORK_ORDER_STATUSES = {
    "WAPPR": "Waiting on Approval",
    "APPR": "Approved",
    "WSCH": "Waiting to be Scheduled",
    "WMATL": "Waiting on Material",
    "INPRG": "In Progress",
    "COMP": "Completed",
    "CLOSE": "Closed",
    "CAN": "Canceled",
}
ASSET_STATUSES = {
    "OPERATING": "Operating",
    "NOT READY": "Not Ready",
    "BROKEN": "Broken",
    "DECOMMISSIONED": "Decommissioned",
}
LOCATION_STATUSES = {"OPERATING": "Operating", "NOT READY": "Not Ready", "DECOMMISSIONED": "Decommissioned"}

WORK_ORDER_ATTRIBUTES = {
    "workorderid": INTEGER,
    "wonum": STRING,
    "siteid": STRING,
    "orgid": STRING,
    "description": STRING,
    "description_longdescription": STRING,
    "status": STRING,
    "statusdate": DATETIME,
    "woclass": STRING,
    "istask": BOOLEAN,
    "taskid": INTEGER,
    "parent": STRING,
    "worktype": STRING,
    "wopriority": INTEGER,
    "assetnum": STRING,
    "location": STRING,
    "reportdate": DATETIME,
    "reportedby": STRING,
    "schedstart": DATETIME,
    "schedfinish": DATETIME,
    "targcompdate": DATETIME,
    "actstart": DATETIME,
    "actfinish": DATETIME,
    "estdur": DECIMAL,
    "actlabhrs": DECIMAL,
    "changedate": DATETIME,
    "changeby": STRING,
}

OBJECT_STRUCTURES: dict[str, ObjectStructure] = {
    structure.name: structure
    for structure in (
        ObjectStructure(
            name="mxapiwo",
            table="workorder",
            key=("wonum", "siteid"),
            id_attribute="workorderid",
            attributes=WORK_ORDER_ATTRIBUTES,
            children={
                "woactivity": Child(
                    "workorder", (("parent", "wonum"), ("siteid", "siteid")), lambda row: bool(row["istask"])
                )
            },
            statuses=WORK_ORDER_STATUSES,
        ),
        ObjectStructure(
            name="mxapiasset",
            table="asset",
            key=("assetnum", "siteid"),
            id_attribute="assetuid",
            attributes={
                "assetuid": INTEGER,
                "assetnum": STRING,
                "siteid": STRING,
                "orgid": STRING,
                "description": STRING,
                "status": STRING,
                "assettype": STRING,
                "location": STRING,
                "parent": STRING,
                "manufacturer": STRING,
                "serialnum": STRING,
                "installdate": DATETIME,
                "purchaseprice": DECIMAL,
                "changedate": DATETIME,
                "changeby": STRING,
            },
            statuses=ASSET_STATUSES,
        ),
        ObjectStructure(
            name="mxapilocations",
            table="locations",
            key=("location", "siteid"),
            id_attribute="locationsid",
            attributes={
                "locationsid": INTEGER,
                "location": STRING,
                "siteid": STRING,
                "orgid": STRING,
                "description": STRING,
                "type": STRING,
                "status": STRING,
                "changedate": DATETIME,
                "changeby": STRING,
            },
            children={
                "lochierarchy": Child("lochierarchy", (("location", "location"), ("siteid", "siteid")))
            },
            statuses=LOCATION_STATUSES,
        ),
    )
}
LOCHIERARCHY_ATTRIBUTES = {"location": STRING, "siteid": STRING, "parent": STRING, "systemid": STRING}


@dataclass
class MaximoData:
    """All rows of the sandbox, by table, with the counters Maximo keeps."""

    clock: Clock
    tables: dict[str, list[Row]] = field(default_factory=dict)
    rowstamp: int = 100_000
    next_ids: dict[str, int] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def rows(self, table: str) -> list[Row]:
        return self.tables.setdefault(table, [])

    def find(self, structure: ObjectStructure, key: Mapping[str, Any]) -> Row | None:
        return next(
            (
                row
                for row in self.rows(structure.table)
                if all(row[name] == key[name] for name in structure.key)
            ),
            None,
        )

    def children(self, child: Child, parent: Mapping[str, Any]) -> list[Row]:
        return [
            row
            for row in self.rows(child.table)
            if child.condition(row) and all(row[ours] == parent[theirs] for ours, theirs in child.join)
        ]

    def insert(self, structure: ObjectStructure, values: Mapping[str, Any]) -> Row:
        row: Row = dict.fromkeys(structure.attributes)
        row.update({name: False for name, kind in structure.attributes.items() if kind == BOOLEAN})
        row.update(values)
        missing = [name for name in structure.key if not row.get(name)]
        if missing:
            raise ValueError(f"key attribute {missing[0]} of {structure.name} is missing")
        if self.find(structure, row) is not None:
            raise ValueError(f"{structure.name} {[row[name] for name in structure.key]} already exists")
        row[structure.id_attribute] = self.next_id(structure)
        self.rows(structure.table).append(row)
        self.stamp(row)
        return row

    def update(self, structure: ObjectStructure, key: Mapping[str, Any], values: Mapping[str, Any]) -> Row:
        row = self.find(structure, key)
        if row is None:
            raise LookupError(f"{structure.name} {dict(key)} not found")
        fixed = [name for name in (*structure.key, structure.id_attribute) if name in values]
        if fixed:
            raise ValueError(f"attribute {fixed[0]} of {structure.name} cannot change")
        row.update(values)
        self.stamp(row)
        return row

    def delete(self, structure: ObjectStructure, key: Mapping[str, Any]) -> None:
        row = self.find(structure, key)
        if row is None:
            raise LookupError(f"{structure.name} {dict(key)} not found")
        for child in structure.children.values():
            for dependent in self.children(child, row):
                self.rows(child.table).remove(dependent)
        self.rows(structure.table).remove(row)

    def stamp(self, row: Row) -> None:
        self.rowstamp += 1
        row["_rowstamp"] = self.rowstamp
        row["changedate"] = self.now()
        row["changeby"] = SANDBOX_USER

    def next_id(self, structure: ObjectStructure) -> int:
        current = self.next_ids.get(structure.table, 1000)
        self.next_ids[structure.table] = current + 1
        return current


def coerce_values(structure: ObjectStructure, values: Mapping[str, Any], server_zone: tzinfo) -> Row:
    """Convert JSON values to row values; a time without an offset is read in the server's time zone."""
    typed: Row = {}
    for name, value in values.items():
        kind = structure.attributes.get(name)
        if kind is None and structure.name == "mxapilocations" and name == "parent":
            kind = STRING
        if kind is None:
            valid = ", ".join(structure.attributes)
            raise ValueError(f"{name} is not an attribute of {structure.name}; valid attributes: {valid}")
        typed[name] = _coerce(name, kind, value, server_zone)
    return typed


def _coerce(name: str, kind: str, value: Any, server_zone: tzinfo) -> Any:
    if value is None:
        return None
    try:
        if kind == DECIMAL:
            return Decimal(str(value))
        if kind == INTEGER:
            return int(value)
        if kind == BOOLEAN:
            return bool(value)
        if kind == DATETIME:
            moment = datetime.fromisoformat(str(value))
            return (moment if moment.tzinfo else moment.replace(tzinfo=server_zone)).astimezone(UTC)
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"invalid value {value!r} for {name} ({kind}): {exc}") from exc
    return str(value)


def seed_data(*, size: int, seed: int, clock: Clock) -> MaximoData:
    """Build the seeded rows: ``size`` work orders with tasks, and the assets and locations they use."""
    rng = random.Random(seed)
    data = MaximoData(clock=clock)
    base = data.now().replace(hour=0, minute=0, second=0)
    seeder = _Seeder(rng, data, base)
    locations = seeder.locations(max(4, size // 6))
    assets = seeder.assets(max(4, size // 3), locations)
    seeder.work_orders(size, assets, locations)
    return data


class _Seeder:
    def __init__(self, rng: random.Random, data: MaximoData, base: datetime) -> None:
        self.rng = rng
        self.data = data
        self.base = base

    def past(self, max_days: int) -> datetime:
        """Return a time between one hour and ``max_days`` days before the seeding day began."""
        return self.base - timedelta(seconds=self.rng.randint(3600, max_days * 86_400))

    def add(self, structure: str, values: Row, changed: datetime) -> Row:
        row = self.data.insert(OBJECT_STRUCTURES[structure], values)
        row["changedate"] = changed
        return row

    def locations(self, count: int) -> list[str]:
        names: list[str] = []
        for index in range(count):
            name = "BEDFORD" if index == 0 else f"BR{100 + index * 100}"
            if index == count - 1:
                name = "CENTRAL"
            self.add(
                "mxapilocations",
                {
                    "location": name,
                    "siteid": SITE,
                    "orgid": ORGANIZATION,
                    "description": "Central storeroom" if name == "CENTRAL" else f"Building {name}",
                    "type": "STOREROOM" if name == "CENTRAL" else "OPERATING",
                    "status": "OPERATING",
                },
                self.past(300),
            )
            parent = None if index == 0 else names[0]
            self.data.rows("lochierarchy").append(
                {"location": name, "siteid": SITE, "parent": parent, "systemid": "PRIMARY"}
            )
            names.append(name)
        return names

    def assets(self, count: int, locations: list[str]) -> list[str]:
        numbers: list[str] = []
        for index in range(count):
            # A slash in a key exercises the reversible joining of composite remote ids.
            number = "PMP/100" if index == 1 else str(11400 + index * 10)
            self.add(
                "mxapiasset",
                {
                    "assetnum": number,
                    "siteid": SITE,
                    "orgid": ORGANIZATION,
                    "description": self.rng.choice(
                        ("Centrifugal pump 100 GPM", "Air compressor", "Conveyor belt")
                    ),
                    "status": self.rng.choice(("OPERATING", "OPERATING", "NOT READY", "BROKEN")),
                    "assettype": self.rng.choice(("PUMP", "COMPRESSOR", "FACILITIES")),
                    "location": self.rng.choice(locations[:-1]),
                    "parent": numbers[0] if index == count - 1 and numbers else None,
                    "manufacturer": self.rng.choice(("ACME", "GOULDS", None)),
                    "serialnum": f"S{self.rng.randint(10000, 99999)}",
                    "installdate": self.past(1500),
                    "purchaseprice": Decimal(self.rng.randint(50_000, 9_000_000)) / 100,
                },
                self.past(300),
            )
            numbers.append(number)
        return numbers

    def work_orders(self, count: int, assets: list[str], locations: list[str]) -> None:
        for index in range(count):
            number = str(1001 + index)
            reported = self.past(200)
            changed = reported + timedelta(hours=self.rng.randint(1, 48))
            status = self.rng.choice(("WAPPR", "APPR", "INPRG", "WMATL", "COMP", "CLOSE"))
            started = reported + timedelta(days=1) if status in ("INPRG", "COMP", "CLOSE") else None
            self.add(
                "mxapiwo",
                {
                    "wonum": number,
                    "siteid": SITE,
                    "orgid": ORGANIZATION,
                    "description": self.rng.choice(
                        ("Replace pump seal", "Inspect compressor", "Lubricate conveyor")
                    ),
                    "description_longdescription": "Follow the lockout procedure."
                    if index % 4 == 0
                    else None,
                    "status": status,
                    "statusdate": changed,
                    "woclass": "WORKORDER",
                    "istask": False,
                    "worktype": self.rng.choice(("CM", "PM", "EM", "CAL")),
                    "wopriority": self.rng.choice((1, 2, 3, 4, None)),
                    "assetnum": self.rng.choice(assets),
                    "location": self.rng.choice(locations[:-1]),
                    "reportdate": reported,
                    "reportedby": "WILSON",
                    "schedstart": reported + timedelta(days=2),
                    "schedfinish": reported + timedelta(days=3),
                    "targcompdate": reported + timedelta(days=7),
                    "actstart": started,
                    "actfinish": started + timedelta(hours=5) if started and status != "INPRG" else None,
                    "estdur": Decimal(self.rng.randint(1, 40)) / 4,
                    "actlabhrs": Decimal(self.rng.randint(0, 40)) / 4 if started else Decimal(0),
                },
                changed,
            )
            for task in range(1, self.rng.randint(1, 3) + 1):
                self._task(number, task, changed)

    def _task(self, parent: str, task: int, changed: datetime) -> None:
        self.add(
            "mxapiwo",
            {
                "wonum": f"T{parent}{task:02d}",
                "siteid": SITE,
                "orgid": ORGANIZATION,
                "description": self.rng.choice(("Isolate equipment", "Inspect", "Replace part", "Test run")),
                "status": self.rng.choice(("WAPPR", "APPR", "INPRG", "COMP")),
                "woclass": "ACTIVITY",
                "istask": True,
                "taskid": task * 10,
                "parent": parent,
                "estdur": Decimal(self.rng.randint(1, 16)) / 4,
                "actlabhrs": Decimal(0),
            },
            changed - timedelta(minutes=task),
        )
