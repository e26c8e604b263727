"""Full and incremental sync of Business Central purchase orders, engine next to a hand-written loop.

Run from the repository root::

    .venv/bin/python -m bench.bc_sync                    # 100,000 orders, 1% change their header
    .venv/bin/python -m bench.bc_sync --line-sweep due   # the incremental sync sweeps every line
    .venv/bin/python -m bench.bc_sync --change lines     # 1% change one line only (sweep due)
    .venv/bin/python -m bench.bc_sync --orders 10000 --repeat 3

The benchmark starts the Business Central sandbox (``interlink.sandbox.dynamics_bc``)
with ``--orders`` seeded purchase orders in a child process, served by uvicorn
on 127.0.0.1, so that its CPU time counts against neither contender. Each
repeat then runs these steps:

1. The baseline syncs every purchase order into a fresh SQLite file. It is a
   hand-written loop with httpx, ``json`` and ``sqlite3`` that reads the same
   pages the connector reads (``$expand=purchaseOrderLines``, the same
   ``$filter`` and page size) and stores them with ``bench.baseline``'s table,
   upsert and one transaction per page.
2. The engine syncs them into a fresh store: ``Runtime`` migrates a new
   SQLite file, ``create_connection`` connects to the sandbox, and
   ``SyncEngine.execute_run`` executes a full run through the Business
   Central connector, line sweep included.
3. Both stores must contain every order, and sampled orders must have equal
   unified and raw JSON.
4. ``--changed`` of the orders (default 1%) change through the sandbox's
   admin route ``PATCH /_sandbox/records/...``. With ``--change header`` their
   ``requestedReceiptDate`` changes, which stamps their ``lastModifiedDateTime``.
   With ``--change lines`` the quantity of their first line changes, which
   leaves the order's ``lastModifiedDateTime`` as it was.
5. The engine, then the baseline, run an incremental sync. The connector
   sweeps every line in an incremental read only when its line sweep is
   due, once an hour by default, and the full sync has just swept. So with
   ``--line-sweep scheduled`` (the default) the engine's incremental sync
   reads the changed orders alone, and with ``--line-sweep due`` it sweeps
   all lines as well. The engine's store must then contain every change. The baseline follows
   ``lastModifiedDateTime`` alone, so it misses line-only changes, and the
   report counts what it found.

Each sync runs in a child process of its own, which reports its wall time
(from the start of the run to its last commit), its CPU time in all its
threads, and its peak RSS. The sandbox's CPU time during each sync is read
from /proc. The output is a Markdown report with the command,
date and machine, ready for docs/benchmarks/dynamics-bc.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import selectors
import shlex
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.baseline import cpu_seconds, open_database, peak_rss_mb, record_id, write_page
from bench.engine_throughput import check_same_json, machine_description
from interlink.connections import create_connection
from interlink.connectors.dynamics_bc import use_tuning
from interlink.connectors.dynamics_bc.client import Tuning
from interlink.crypto import generate_secret_key
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.sandbox.dynamics_bc import create_app, demo_credentials
from interlink.settings import Settings
from interlink.sync.requests import request_syncs

HOST = "127.0.0.1"
DEFAULT_ORDERS = 100_000
DEFAULT_SEED = 1
DEFAULT_CHANGED = 0.01
# The connector's default page size (``Tuning.page_size``), sent as ``Prefer: odata.maxpagesize``.
DEFAULT_PAGE_SIZE = Tuning().page_size
DEFAULT_TIMEOUT = 3600.0
# Seeding 100,000 orders took 4 to 9 s on the 2-core benchmark machine, so this leaves room for larger seeds.
SANDBOX_STARTUP_TIMEOUT = 600.0
SHUTDOWN_TIMEOUT = 10.0
# Targets: the engine's full sync reaches at least this share of the baseline's records per second ...
TARGET_RATIO = 0.7
# ... and an incremental sync takes less than this share of the engine's full sync.
TARGET_INCREMENTAL_SHARE = 0.05
# The same lookback as the connector's: an incremental read starts this long before the high-water mark.
LOOKBACK = timedelta(minutes=5)
HISTORY_DAYS = ConnectionSettings().history_days
# Orders compared field by field between the two stores after the full sync.
SAMPLE_SIZE = 1000
CHANGE_TIMEOUT = 600.0

_REPO_ROOT = Path(__file__).resolve().parents[1]
_EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
# Business Central's purchase order statuses -> unified status, as the connector's mapping has them.
_ORDER_STATUSES = {
    "Draft": "draft",
    "In Review": "pending_approval",
    "Open": "ordered",
    "Released": "ordered",
}


# The figures each child process prints as one line of JSON.


@dataclass(frozen=True)
class SyncFigures:
    """Figures of one sync by one contender."""

    records: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    written: int
    connection_id: str | None = None
    # Set by the parent: the sandbox process's CPU time during the sync.
    sandbox_cpu_seconds: float | None = None

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_us_per_record(self) -> float:
        return self.cpu_seconds / self.records * 1_000_000 if self.records else 0.0


# The engine side.


async def run_engine(
    sandbox_url: str, mode: str, connection_id: str | None, page_size: int, *, sweep_due: bool = False
) -> SyncFigures:
    """Run one sync of purchase orders through ``SyncEngine.execute_run`` and time it.

    ``Settings`` come from the environment (``INTERLINK_DATABASE_URL``,
    ``INTERLINK_SECRET_KEY``), so the incremental sync, in another process,
    opens the store and decrypts the credentials of the full one. The full
    sync creates the connection, and the incremental one needs its id.
    With ``sweep_due`` an incremental sync sweeps the lines even though the
    full sync swept them moments ago.
    """
    tuning = Tuning(page_size=page_size)
    if sweep_due:
        tuning = replace(tuning, line_sweep_interval=timedelta(0))
    use_tuning(tuning)
    runtime = Runtime(Settings(), workers=False)
    await runtime.start(migrate=True)
    try:
        if connection_id is None:
            created = await create_connection(
                runtime.db,
                runtime.credentials,
                runtime.http_factory,
                integration_name="dynamics_bc",
                end_user={"id": "bench"},
                credentials=demo_credentials(sandbox_url),
                auth_scheme=None,
                settings=ConnectionSettings(history_days=HISTORY_DAYS),
            )
            connection_id = created.connection.id
        (run,) = await request_syncs(
            runtime.db,
            None,
            connection_id=connection_id,
            entities=["purchase_order"],
            mode=mode,
            trigger="manual",
            now=runtime.clock(),
        )
        started = time.perf_counter()
        cpu_started = cpu_seconds()
        finished = await runtime.engine.execute_run(run.id)
        seconds = time.perf_counter() - started
        cpu_used = cpu_seconds() - cpu_started
    finally:
        await runtime.stop()
        use_tuning(None)

    if finished is None or finished.status != "succeeded":
        error = finished.error if finished is not None else "the run was not executed"
        raise RuntimeError(f"the engine's {mode} run did not succeed: {error}")
    counts = finished.counts
    return SyncFigures(
        records=counts["fetched"],
        seconds=seconds,
        cpu_seconds=cpu_used,
        peak_rss_mb=peak_rss_mb(),
        written=counts["created"] + counts["updated"],
        connection_id=connection_id,
    )


# The baseline side: what an engineer would write against the same API without Interlink.


def _text(value: Any) -> str | None:
    cleaned = str(value).strip() if value is not None else ""
    return cleaned or None


def _date(value: Any) -> str | None:
    # Business Central writes an empty date as 0001-01-01.
    if not value or str(value).startswith("0001-01-01"):
        return None
    return str(value)[:10]


def _number(value: Any) -> str | None:
    # The body is parsed with parse_float=str, so a number with a fraction arrives as its exact text.
    return None if value is None or value == "" else str(value)


def _guid(value: Any) -> str | None:
    return None if not value or value == _EMPTY_GUID else str(value)


def _ref(prefix: str, entity: str, remote_id: str | None) -> dict[str, str] | None:
    if remote_id is None:
        return None
    return {"id": record_id(prefix, entity, remote_id), "remote_id": remote_id}


def _address(raw: Mapping[str, Any], prefix: str = "") -> dict[str, str | None] | None:
    if prefix:
        names = [
            prefix + name for name in ("AddressLine1", "AddressLine2", "City", "State", "PostCode", "Country")
        ]
    else:
        names = ["addressLine1", "addressLine2", "city", "state", "postalCode", "country"]
    values = [_text(raw.get(name)) for name in names]
    if not any(values):
        return None
    keys = ("line1", "line2", "city", "region", "postal_code", "country")
    return dict(zip(keys, values, strict=True))


def _line_status(quantity: str | None, received: str | None) -> str:
    if quantity is None or received is None or Decimal(received) <= 0:
        return "open"
    return "received" if Decimal(received) >= Decimal(quantity) else "partially_received"


def unified_line(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Map a Business Central purchase order line to the unified line JSON."""
    quantity = _number(raw.get("quantity"))
    received = _number(raw.get("receivedQuantity"))
    item_id = _guid(raw.get("itemId")) if raw.get("lineType") == "Item" else None
    return {
        "remote_id": str(raw["id"]),
        "line_number": raw.get("sequence"),
        "part": _ref("prt", "part", item_id),
        "description": _text(raw.get("description")),
        "quantity": quantity,
        "received_quantity": received,
        "unit": _text(raw.get("unitOfMeasureCode")),
        "unit_price": _number(raw.get("directUnitCost")),
        "discount": _number(raw.get("discountAmount")),
        "tax_amount": _number(raw.get("totalTaxAmount")),
        "line_total": _number(raw.get("amountExcludingTax")),
        "expected_delivery_date": _date(raw.get("expectedReceiptDate")),
        "status": _line_status(quantity, received),
    }


def unified_order(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Map a Business Central purchase order with its lines to the unified JSON, every field present."""
    raw_lines = raw.get("purchaseOrderLines") or []
    lines = [unified_line(line) for line in raw_lines]
    locations = {_guid(line.get("locationId")) for line in raw_lines}
    site = locations.pop() if len(locations) == 1 else None
    if raw.get("fullyReceived"):
        status: str | None = "received"
    elif any(line["status"] in ("partially_received", "received") for line in lines):
        status = "partially_received"
    else:
        status = _ORDER_STATUSES.get(str(raw.get("status")))
    return {
        "number": _text(raw.get("number")),
        "title": None,
        "description": None,
        "status": status,
        "remote_status": _text(raw.get("status")),
        "vendor": _ref("vnd", "vendor", _guid(raw.get("vendorId"))),
        "buyer": None,
        "site": _ref("loc", "location", site),
        "order_date": _date(raw.get("orderDate")),
        "expected_delivery_date": _date(raw.get("requestedReceiptDate")),
        "approved_at": None,
        "closed_at": None,
        "currency": _text(raw.get("currencyCode")),
        "total_net": _number(raw.get("totalAmountExcludingTax")),
        "total_tax": _number(raw.get("totalTaxAmount")),
        "total_gross": _number(raw.get("totalAmountIncludingTax")),
        "payment_terms": None,
        "ship_to": _address(raw, "shipTo"),
        "bill_to": _address(raw, "payTo"),
        "notes": None,
        "lines": lines,
    }


def _row(raw: Mapping[str, Any], synced_at: str) -> tuple[str | None, ...]:
    remote_id = str(raw["id"])
    raw_json = json.dumps(raw, separators=(",", ":"))
    return (
        remote_id,
        record_id("po", "purchase_order", remote_id),
        json.dumps(unified_order(raw), separators=(",", ":")),
        raw_json,
        hashlib.sha256(raw_json.encode()).hexdigest(),
        None,
        raw["lastModifiedDateTime"],
        synced_at,
    )


def _odata_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def run_baseline(
    sandbox_url: str, database_path: str, mode: str, *, orders: int, page_size: int, timeout: float
) -> SyncFigures:
    """Sync purchase orders with httpx, ``json`` and ``sqlite3``, one transaction per page, and time it.

    A full sync reads the connector's history window. An incremental sync
    reads from the saved high-water mark minus ``LOOKBACK``. The cursor saved
    with each page is the next link until the last page, which saves the new
    high-water mark: pages come in id order, so the mark is known only at the end.
    """
    database = open_database(database_path)
    saved = database.execute("SELECT cursor FROM sync_cursor WHERE name = 'purchase_orders'").fetchone()
    high_water = json.loads(saved[0]).get("hwm") if saved else None
    if mode == "incremental" and high_water is not None:
        since = datetime.fromisoformat(high_water.replace("Z", "+00:00")) - LOOKBACK
    else:
        since = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)

    credentials = demo_credentials(sandbox_url)
    api_root = f"{sandbox_url}/v2.0/{credentials['tenant_id']}/{credentials['environment']}/api/v2.0"
    records = written = 0
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=120.0) as client:
        token = client.post(
            credentials["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"],
                "scope": "https://api.businesscentral.dynamics.com/.default",
            },
        )
        token.raise_for_status()
        headers = {
            "Authorization": f"Bearer {token.json()['access_token']}",
            "Prefer": f"odata.maxpagesize={page_size}",
        }
        companies = client.get(f"{api_root}/companies", headers=headers)
        companies.raise_for_status()
        company_id = companies.json()["value"][0]["id"]

        url = f"{api_root}/companies({company_id})/purchaseOrders"
        params: dict[str, str] | None = {
            "$filter": f"lastModifiedDateTime ge {_odata_time(since)}",
            "$expand": "purchaseOrderLines",
        }
        latest = high_water
        max_pages = orders // page_size + 2
        for _ in range(max_pages):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the baseline's {mode} sync took longer than {timeout} s; raise --timeout"
                )
            response = client.get(url, params=params, headers=headers)
            response.raise_for_status()
            body = json.loads(response.content, parse_float=str)
            synced_at = datetime.now(UTC).isoformat()
            rows = [_row(raw, synced_at) for raw in body["value"]]
            for raw in body["value"]:
                # Every time has the same format, so text order is time order.
                if latest is None or raw["lastModifiedDateTime"] > latest:
                    latest = raw["lastModifiedDateTime"]
            next_link = body.get("@odata.nextLink")
            cursor = {"next": next_link, "hwm": high_water} if next_link else {"hwm": latest}
            written += write_page(database, rows, json.dumps(cursor))
            records += len(rows)
            if next_link is None:
                break
            url, params = next_link, None
        else:
            raise RuntimeError(f"the sandbox served more than {max_pages} pages; stopped")
    seconds = time.perf_counter() - started
    cpu_used = cpu_seconds() - cpu_started
    database.close()
    return SyncFigures(
        records=records,
        seconds=seconds,
        cpu_seconds=cpu_used,
        peak_rss_mb=peak_rss_mb(),
        written=written,
    )


# The sandbox in a child process.


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox started by ``run_sandbox``: its URL, process id and what seeding it took."""

    url: str
    pid: int
    orders: int
    lines: int
    seed_seconds: float
    rss_mb: float


def serve_sandbox(orders: int, seed: int) -> None:
    """Seed the sandbox, print one JSON line with its URL and seeding figures, then serve it until stopped."""
    # asyncio sets TCP_NODELAY only on sockets created as IPPROTO_TCP. Without it, Nagle's
    # algorithm delays small responses by about 40 ms each.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(128)
    started = time.perf_counter()
    app = create_app(size=orders, seed=seed)
    seed_seconds = time.perf_counter() - started
    records = app.state.sandbox.data.records
    figures = {
        "url": f"http://{HOST}:{listener.getsockname()[1]}",
        "orders": len(records["purchaseOrders"]),
        "lines": len(records["purchaseOrderLines"]),
        "seed_seconds": seed_seconds,
        "rss_mb": _rss_mb(),
    }
    print(json.dumps(figures), flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listener])


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1_000_000
    raise RuntimeError("/proc/self/status has no VmRSS line")


@contextmanager
def run_sandbox(orders: int, seed: int) -> Iterator[RunningSandbox]:
    """Start the sandbox in a child process and yield it; stop it, by its PID, when the block ends."""
    command = [sys.executable, "-m", "bench.bc_sync", "--serve", "--orders", str(orders), "--seed", str(seed)]
    process = subprocess.Popen(command, cwd=_REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(SANDBOX_STARTUP_TIMEOUT):
                raise RuntimeError(f"the sandbox did not start within {SANDBOX_STARTUP_TIMEOUT} s")
        line = process.stdout.readline()
        if not line.startswith("{"):
            raise RuntimeError(f"the sandbox exited or printed {line!r} instead of its figures")
        yield RunningSandbox(pid=process.pid, **json.loads(line))
    finally:
        process.terminate()
        try:
            process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_cpu_seconds(pid: int) -> float:
    """Return the user and system CPU time of process ``pid`` so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the line, counted from the pid.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Changes through the admin route.


@dataclass(frozen=True)
class Change:
    """One order changed through the admin route, and the value its unified JSON must then show."""

    order_id: str
    line_id: str | None
    expected: str


def choose_changes(baseline_database: Path, share: float, kind: str, repeat: int) -> list[Change]:
    """Pick every ``1/share``-th order by id, and the value each must show after its change.

    Each repeat sets other values, so that every change is a real change.
    """
    with sqlite3.connect(baseline_database) as database:
        rows = database.execute("SELECT remote_id, raw FROM purchase_orders ORDER BY remote_id").fetchall()
    step = max(1, round(1 / share))
    changes = []
    for remote_id, raw in rows[step // 2 :: step]:
        if kind == "header":
            changes.append(Change(remote_id, None, (date(2031, 1, 1) + timedelta(days=repeat)).isoformat()))
        else:
            first_line = json.loads(raw)["purchaseOrderLines"][0]
            changes.append(Change(remote_id, first_line["id"], str(1000 + repeat)))
    return changes


def apply_changes(sandbox_url: str, changes: list[Change]) -> float:
    """Send one ``PATCH /_sandbox/records/...`` per change and return the seconds they took."""
    started = time.perf_counter()
    deadline = time.monotonic() + CHANGE_TIMEOUT
    with httpx.Client(base_url=sandbox_url, timeout=30.0) as admin:
        for change in changes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"applying {len(changes)} changes took longer than {CHANGE_TIMEOUT} s")
            fields: dict[str, str | int]
            if change.line_id is None:
                path = f"/_sandbox/records/purchaseOrders/{change.order_id}"
                fields = {"requestedReceiptDate": change.expected}
            else:
                path = f"/_sandbox/records/purchaseOrderLines/{change.line_id}"
                fields = {"quantity": int(change.expected)}
            admin.patch(path, json=fields).raise_for_status()
    return time.perf_counter() - started


def changed_value(data: Mapping[str, Any], change: Change) -> str | None:
    """Return the value of ``data`` (unified JSON) that ``change`` set."""
    if change.line_id is None:
        value = data.get("expected_delivery_date")
        return str(value) if value is not None else None
    line = next((line for line in data["lines"] if line["remote_id"] == change.line_id), None)
    return None if line is None else str(Decimal(line["quantity"]))


# Reading what each contender stored. The unique index of records starts with the connection id,
# so the engine's query names it.
ENGINE_ROW = (
    "SELECT data, raw FROM records WHERE connection_id = ? AND entity = 'purchase_order' AND remote_id = ?"
)
BASELINE_ROW = "SELECT data, raw FROM purchase_orders WHERE remote_id = ?"


@dataclass(frozen=True)
class Store:
    """A contender's SQLite file and how to read one stored order (unified and raw JSON) from it."""

    path: Path
    row_query: str
    connection_id: str | None = None

    def row(self, connection: sqlite3.Connection, remote_id: str) -> tuple[str, str] | None:
        params = (remote_id,) if self.connection_id is None else (self.connection_id, remote_id)
        row: tuple[str, str] | None = connection.execute(self.row_query, params).fetchone()
        return row


def count_stored_changes(store: Store, changes: list[Change]) -> int:
    """Count the changes whose new value the store's unified JSON shows."""
    found = 0
    with sqlite3.connect(store.path) as connection:
        for change in changes:
            row = store.row(connection, change.order_id)
            if row is not None and changed_value(json.loads(row[0]), change) == change.expected:
                found += 1
    return found


def check_stores(engine: Store, baseline: Store, orders: int) -> None:
    """Raise ``RuntimeError`` unless both stores contain every order and sampled orders have equal JSON.

    Reference ids differ, because they are derived from the connection id,
    which differs between the stores, so only their remote ids are compared.
    """
    with sqlite3.connect(engine.path) as engine_db, sqlite3.connect(baseline.path) as baseline_db:
        engine_count = engine_db.execute(
            "SELECT count(*) FROM records WHERE entity = 'purchase_order' AND NOT deleted"
        ).fetchone()[0]
        baseline_count = baseline_db.execute("SELECT count(*) FROM purchase_orders").fetchone()[0]
        if engine_count != orders or baseline_count != orders:
            raise RuntimeError(
                f"expected {orders} orders in each store, found {engine_count} (engine) "
                f"and {baseline_count} (baseline)"
            )

        remote_ids = [
            row[0] for row in baseline_db.execute("SELECT remote_id FROM purchase_orders ORDER BY remote_id")
        ]
        step = max(1, len(remote_ids) // SAMPLE_SIZE)
        for remote_id in remote_ids[::step]:
            engine_row = engine.row(engine_db, remote_id)
            baseline_row = baseline.row(baseline_db, remote_id)
            if engine_row is None:
                raise RuntimeError(f"order {remote_id} is in the baseline's store but not in the engine's")
            if baseline_row is None:
                raise RuntimeError(f"order {remote_id} was listed by the baseline's store but not found")
            check_same_json(f"order {remote_id}", engine_row, baseline_row)


# Running the contenders and the report.


@dataclass
class Repeat:
    """The figures of one repeat: four syncs and the changes between them."""

    full_engine: SyncFigures
    full_baseline: SyncFigures
    incremental_engine: SyncFigures
    incremental_baseline: SyncFigures
    changes: int
    change_seconds: float
    engine_found: int
    baseline_found: int


def run_child(command: list[str], env: Mapping[str, str], timeout: float, sandbox_pid: int) -> SyncFigures:
    """Run a contender's child process, parse the JSON line it prints last, and add the sandbox's CPU time."""
    sandbox_cpu = process_cpu_seconds(sandbox_pid)
    completed = subprocess.run(
        command,
        cwd=_REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env},
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} exited with {completed.returncode}:\n{completed.stderr[-4000:]}"
        )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["sandbox_cpu_seconds"] = process_cpu_seconds(sandbox_pid) - sandbox_cpu
    return SyncFigures(**figures)


def run_repeat(arguments: argparse.Namespace, sandbox: RunningSandbox, folder: Path, repeat: int) -> Repeat:
    """Run both full syncs, check the stores, change orders, then run both incremental syncs."""
    engine_database = folder / f"engine-{repeat}.sqlite3"
    baseline_database = folder / f"baseline-{repeat}.sqlite3"
    limit = arguments.timeout + 60
    common = [
        "--sandbox",
        sandbox.url,
        "--orders",
        str(sandbox.orders),
        "--page-size",
        str(arguments.page_size),
    ]
    common += ["--timeout", str(arguments.timeout)]
    child = [sys.executable, "-m", "bench.bc_sync", *common]
    engine_env = {
        "INTERLINK_DATABASE_URL": f"sqlite:///{engine_database}",
        "INTERLINK_SECRET_KEY": generate_secret_key(),
    }
    baseline_command = [*child, "--contender", "baseline", "--database", str(baseline_database)]

    full_baseline = run_child([*baseline_command, "--mode", "full"], {}, limit, sandbox.pid)
    full_engine = run_child(
        [*child, "--contender", "engine", "--mode", "full"], engine_env, limit, sandbox.pid
    )
    assert full_engine.connection_id is not None
    engine_store = Store(engine_database, ENGINE_ROW, full_engine.connection_id)
    baseline_store = Store(baseline_database, BASELINE_ROW)
    check_stores(engine_store, baseline_store, sandbox.orders)
    _progress(
        f"repeat {repeat} full: engine {full_engine.records_per_second:,.0f} records/s, "
        f"baseline {full_baseline.records_per_second:,.0f} records/s"
    )

    changes = choose_changes(baseline_database, arguments.changed, arguments.change, repeat)
    change_seconds = apply_changes(sandbox.url, changes)
    engine_incremental_command = [*child, "--contender", "engine", "--mode", "incremental"]
    engine_incremental_command += ["--connection-id", full_engine.connection_id]
    if sweep_due(arguments):
        engine_incremental_command.append("--sweep-due")
    incremental_engine = run_child(engine_incremental_command, engine_env, limit, sandbox.pid)
    incremental_baseline = run_child([*baseline_command, "--mode", "incremental"], {}, limit, sandbox.pid)
    _progress(
        f"repeat {repeat} incremental: engine {incremental_engine.seconds:.2f} s, "
        f"baseline {incremental_baseline.seconds:.2f} s"
    )

    engine_found = count_stored_changes(engine_store, changes)
    if engine_found != len(changes):
        raise RuntimeError(
            f"the engine's store shows {engine_found} of {len(changes)} changes after its incremental sync"
        )
    baseline_found = count_stored_changes(baseline_store, changes)
    for path in folder.glob(f"*-{repeat}.sqlite3*"):
        path.unlink()
    return Repeat(
        full_engine,
        full_baseline,
        incremental_engine,
        incremental_baseline,
        len(changes),
        change_seconds,
        engine_found,
        baseline_found,
    )


def sweep_due(arguments: argparse.Namespace) -> bool:
    """Return whether the engine's incremental sync sweeps the lines: on request, or for line changes."""
    return bool(arguments.line_sweep == "due" or arguments.change == "lines")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _table_row(sync: str, contender: str, results: list[SyncFigures]) -> str:
    def median(value: Callable[[SyncFigures], float]) -> float:
        return _median([value(result) for result in results])

    sandbox_cpu = [result.sandbox_cpu_seconds for result in results if result.sandbox_cpu_seconds is not None]
    return (
        f"| {sync} | {contender} | {median(lambda r: r.records):,.0f} | {median(lambda r: r.written):,.0f} "
        f"| {median(lambda r: r.seconds):.2f} | {median(lambda r: r.records_per_second):,.0f} "
        f"| {median(lambda r: r.cpu_seconds):.2f} | {median(lambda r: r.cpu_us_per_record):,.0f} "
        f"| {_median(sandbox_cpu) if sandbox_cpu else float('nan'):.2f} "
        f"| {max(r.peak_rss_mb for r in results):.0f} |"
    )


def report(
    command: str, arguments: argparse.Namespace, sandbox: RunningSandbox, repeats: list[Repeat]
) -> str:
    """Format the figures as Markdown: medians over the repeats, and the highest peak RSS of any repeat."""
    full_engine = [repeat.full_engine for repeat in repeats]
    full_baseline = [repeat.full_baseline for repeat in repeats]
    rate_ratio = _median([e.records_per_second for e in full_engine]) / _median(
        [b.records_per_second for b in full_baseline]
    )
    cpu_ratio = _median([b.cpu_us_per_record for b in full_baseline]) / _median(
        [e.cpu_us_per_record for e in full_engine]
    )
    incremental_share = _median([r.incremental_engine.seconds / r.full_engine.seconds for r in repeats])

    changes = repeats[0].changes
    kind = "header (requestedReceiptDate)" if arguments.change == "header" else "first line's quantity only"
    change_seconds = _median([r.change_seconds for r in repeats])
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    header = [
        f"- Command: `{command}`",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine_description()}",
        f"- Load average after the run (1, 5, 15 min): {load}",
        f"- Sandbox: {sandbox.orders:,} purchase orders with {sandbox.lines:,} lines, seeded in "
        f"{sandbox.seed_seconds:.1f} s, {sandbox.rss_mb:.0f} MB RSS after seeding, "
        f"page size {arguments.page_size:,}",
        f"- Changes: {changes:,} orders ({arguments.changed:.0%}), {kind}, applied in {change_seconds:.1f} s "
        f"through the admin route, repeats: {len(repeats)}",
        "- Line sweep in the engine's incremental sync: "
        + (
            "due, so it reads every line"
            if sweep_due(arguments)
            else "not due (the full sync built the line digests moments before), as in every "
            "incremental sync less than the sweep interval after the last sweep"
        ),
    ]

    table = [
        "| sync | contender | records read | written | seconds | records/s | CPU (s) | CPU µs per record "
        "| sandbox CPU (s) | peak RSS (MB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        _table_row("full", "engine", full_engine),
        _table_row("full", "baseline", full_baseline),
        _table_row("incremental", "engine", [repeat.incremental_engine for repeat in repeats]),
        _table_row("incremental", "baseline", [repeat.incremental_baseline for repeat in repeats]),
    ]

    verdict = [
        f"Full sync, engine / baseline records per second: {rate_ratio:.2f}; by CPU time per record: "
        f"{cpu_ratio:.2f} (target at least {TARGET_RATIO}).",
        f"Engine incremental sync / engine full sync, wall time: {incremental_share:.1%} "
        f"(target under {TARGET_INCREMENTAL_SHARE:.0%}).",
        f"Changes the incremental sync stored, fewest of any repeat: "
        f"engine {min(r.engine_found for r in repeats):,} of {changes:,}, "
        f"baseline {min(r.baseline_found for r in repeats):,} of {changes:,}.",
    ]
    return "\n".join([*header, "", *table, "", *verdict])


def benchmark(arguments: argparse.Namespace) -> str:
    """Start the sandbox, run the repeats against it and return the report."""
    repeats: list[Repeat] = []
    with (
        tempfile.TemporaryDirectory(prefix="interlink-bench-bc-") as folder,
        run_sandbox(arguments.orders, arguments.seed) as sandbox,
    ):
        _progress(
            f"sandbox: {sandbox.orders:,} orders seeded in {sandbox.seed_seconds:.1f} s at {sandbox.url}"
        )
        for repeat in range(1, arguments.repeat + 1):
            repeats.append(run_repeat(arguments, sandbox, Path(folder), repeat))
    command = shlex.join([".venv/bin/python", "-m", "bench.bc_sync", *sys.argv[1:]])
    return report(command, arguments, sandbox, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Measure full and incremental Business Central syncs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--orders", type=int, default=DEFAULT_ORDERS, help="purchase orders the sandbox seeds"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the sandbox's data")
    parser.add_argument(
        "--page-size",
        type=int,
        default=DEFAULT_PAGE_SIZE,
        help="orders per page, sent as Prefer: odata.maxpagesize",
    )
    parser.add_argument(
        "--changed",
        type=float,
        default=DEFAULT_CHANGED,
        help="share of the orders to change before the incremental syncs, above 0 and at most 1",
    )
    parser.add_argument(
        "--change",
        choices=("header", "lines"),
        default="header",
        help="change each order's header, or only its first line",
    )
    parser.add_argument(
        "--line-sweep",
        choices=("scheduled", "due"),
        default="scheduled",
        help="scheduled: the engine's incremental sync sweeps the lines once the connector's sweep "
        "interval has passed, so not right after the full sync. due: it sweeps them. "
        "--change lines implies due",
    )
    parser.add_argument("--repeat", type=int, default=1, help="repeats; the report shows medians")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="limit per sync, in seconds")
    # Used by the benchmark itself to start the sandbox and the contenders in child processes.
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contender", choices=("engine", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("full", "incremental"), help=argparse.SUPPRESS)
    parser.add_argument("--sandbox", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--connection-id", help=argparse.SUPPRESS)
    parser.add_argument("--sweep-due", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()

    if arguments.serve:
        serve_sandbox(arguments.orders, arguments.seed)
        return
    if arguments.contender is not None:
        if arguments.contender == "engine":
            figures = asyncio.run(
                run_engine(
                    arguments.sandbox,
                    arguments.mode,
                    arguments.connection_id,
                    arguments.page_size,
                    sweep_due=arguments.sweep_due,
                )
            )
        else:
            figures = run_baseline(
                arguments.sandbox,
                arguments.database,
                arguments.mode,
                orders=arguments.orders,
                page_size=arguments.page_size,
                timeout=arguments.timeout,
            )
        print(json.dumps(asdict(figures)))
        return
    if not 0 < arguments.changed <= 1:
        parser.error(f"--changed {arguments.changed} is out of range; use a share above 0 and at most 1")
    for name in ("orders", "page_size", "repeat"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(arguments, name)} is invalid; use 1 or more")
    print(benchmark(arguments))


if __name__ == "__main__":
    main()
