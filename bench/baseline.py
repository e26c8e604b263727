"""A hand-written sync loop from the paged source into SQLite: the engine benchmark's baseline.

It is what an engineer would write without Interlink: httpx fetches a page,
``json`` parses it, a dict comprehension maps each purchase order to the same
unified JSON that the engine stores, and one ``executemany`` of
``INSERT ... ON CONFLICT DO UPDATE`` writes the page together with its cursor
in one transaction. It stores the same data per record as the engine does:
the unified JSON, the raw JSON, a SHA-256 content hash that keeps unchanged
records from being rewritten, the record id and the remote times. It skips
what the engine adds on top: pydantic validation, canonical JSON, change
numbers, the run's lease and events, and the indexes that the API pages by.

Run it alone against a running source with
``python -m bench.baseline --source URL --database PATH``; it prints one
line of JSON with its figures. ``bench.engine_throughput`` runs it that way.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import resource
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

DEFAULT_PAGE_SIZE = 1000
DEFAULT_TIMEOUT = 3600.0
CONNECTION_KEY = "baseline"

# Source status -> unified purchase order status.
_STATUSES = {
    "draft": "draft",
    "confirmed": "ordered",
    "processing": "partially_received",
    "done": "received",
    "cancelled": "cancelled",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS purchase_orders (
    remote_id TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    raw TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    remote_created_at TEXT,
    remote_updated_at TEXT,
    synced_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_cursor (
    name TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
"""

# The WHERE clause leaves a record whose hash did not change untouched.
_UPSERT = """
INSERT INTO purchase_orders
    (remote_id, id, data, raw, content_hash, remote_created_at, remote_updated_at, synced_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (remote_id) DO UPDATE SET
    data = excluded.data,
    raw = excluded.raw,
    content_hash = excluded.content_hash,
    remote_created_at = excluded.remote_created_at,
    remote_updated_at = excluded.remote_updated_at,
    synced_at = excluded.synced_at
WHERE purchase_orders.content_hash != excluded.content_hash
"""

_SAVE_CURSOR = """
INSERT INTO sync_cursor (name, cursor) VALUES ('purchase_orders', ?)
ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor
"""


@dataclass(frozen=True)
class BaselineResult:
    """Figures of one baseline run; ``written`` counts inserted and rewritten rows."""

    records: int
    pages: int
    written: int
    seconds: float
    cpu_seconds: float
    gc_seconds: float
    records_per_second: float
    peak_rss_mb: float


def record_id(prefix: str, entity: str, remote_id: str) -> str:
    """Build a record id with the scheme of ``interlink.model.ids.record_id``, so both store equal ids."""
    material = "\x1f".join((CONNECTION_KEY, entity, remote_id)).encode()
    return f"{prefix}_{base64.b32encode(hashlib.sha256(material).digest()).decode().lower()[:26]}"


def unified_purchase_order(raw: dict[str, Any]) -> dict[str, Any]:
    """Map a source purchase order to the unified JSON, every field of the unified model present."""
    return {
        "number": raw["number"],
        "title": None,
        "description": None,
        "status": _STATUSES.get(raw["status"]),
        "remote_status": raw["status"],
        "vendor": {"id": record_id("vnd", "vendor", raw["vendor_id"]), "remote_id": raw["vendor_id"]},
        "buyer": None,
        "site": None,
        "order_date": raw["order_date"],
        "expected_delivery_date": raw["expected_date"],
        "approved_at": None,
        "closed_at": None,
        "currency": raw["currency"],
        "total_net": raw["total_net"],
        "total_tax": raw["total_tax"],
        "total_gross": raw["total_gross"],
        "payment_terms": None,
        "ship_to": None,
        "bill_to": None,
        "notes": None,
        "lines": [_unified_line(line) for line in raw["lines"]],
    }


def _unified_line(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "remote_id": str(line["line"]),
        "line_number": line["line"],
        "part": {"id": record_id("prt", "part", line["item_id"]), "remote_id": line["item_id"]},
        "description": line["description"],
        "quantity": line["quantity"],
        "received_quantity": None,
        "unit": line["unit"],
        "unit_price": line["unit_price"],
        "discount": None,
        "tax_amount": None,
        "line_total": line["amount"],
        "expected_delivery_date": None,
        "status": None,
    }


def _row(raw: dict[str, Any], synced_at: str) -> tuple[str, ...]:
    remote_id = str(raw["id"])
    raw_json = json.dumps(raw, separators=(",", ":"))
    return (
        remote_id,
        record_id("po", "purchase_order", remote_id),
        json.dumps(unified_purchase_order(raw), separators=(",", ":")),
        raw_json,
        hashlib.sha256(raw_json.encode()).hexdigest(),
        raw["created_at"],
        raw["modified_at"],
        synced_at,
    )


def open_database(path: str) -> sqlite3.Connection:
    """Open the baseline's SQLite file with the pragmas the engine's store uses, and create its tables."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(_SCHEMA)
    return connection


def write_page(
    database: sqlite3.Connection, rows: Sequence[tuple[str | None, ...]], cursor: str | None
) -> int:
    """Upsert a page of rows and save its cursor in one transaction, and return the rows written.

    A row has the columns of ``purchase_orders`` in table order. A ``None``
    cursor leaves the saved one as it was.
    """
    database.execute("BEGIN IMMEDIATE")
    try:
        written: int = database.executemany(_UPSERT, rows).rowcount
        if cursor is not None:
            database.execute(_SAVE_CURSOR, (cursor,))
        database.execute("COMMIT")
    except BaseException:
        database.execute("ROLLBACK")
        raise
    return written


def sync(
    source_url: str,
    database: sqlite3.Connection,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_pages: int,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[int, int, int]:
    """Copy every purchase order of the source into ``database``; return (records, pages, rows written).

    Raises ``RuntimeError`` when the source has more than ``max_pages`` pages
    or the sync takes longer than ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    records = written = 0
    after = 0
    with httpx.Client(base_url=source_url, timeout=30.0) as client:
        for pages in range(1, max_pages + 1):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the baseline sync took longer than {timeout} s; raise --timeout")
            response = client.get("/purchase-orders", params={"limit": page_size, "after": after})
            response.raise_for_status()
            body = json.loads(response.content)
            data = body["data"]
            synced_at = datetime.now(UTC).isoformat()
            rows = [_row(raw, synced_at) for raw in data]
            if data:
                after = data[-1]["id"]
                cursor = json.dumps({"after": after, "modified_at": data[-1]["modified_at"]})

            written += write_page(database, rows, cursor if data else None)
            records += len(rows)
            if body["next_after"] is None:
                return records, pages, written
    raise RuntimeError(f"the source had more than {max_pages} pages; raise the expected record count")


class GcTimer:
    """Adds up the CPU time of the process while the cyclic garbage collector runs.

    The collector runs with the GIL held, so other threads rarely run during
    a collection. A thread inside SQLite, which releases the GIL, still adds
    its CPU time, so the total is an upper bound.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = cpu_seconds()
        else:
            self.seconds += cpu_seconds() - self._started


def cpu_seconds() -> float:
    """Return the CPU time this process has used so far, user and system, in all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MB (10**6 bytes).

    On Linux it reads ``VmHWM`` from /proc/self/status, which starts afresh
    at exec. ``getrusage`` also counts the pages that the child shared with
    its parent between fork and exec, so a large parent inflates it. It is
    the fallback where /proc is missing.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1_000_000
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1_000_000
    raise RuntimeError("/proc/self/status has no VmHWM line")


def main() -> None:
    parser = argparse.ArgumentParser(description="Sync the paged source into SQLite by hand.")
    parser.add_argument("--source", required=True, help="base URL of a running bench.paged_source")
    parser.add_argument("--database", required=True, help="path of the SQLite file to write")
    parser.add_argument("--records", type=int, required=True, help="number of records the source serves")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE, help="records per page")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="limit in seconds")
    arguments = parser.parse_args()

    database = open_database(arguments.database)
    max_pages = arguments.records // arguments.page_size + 2
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    with GcTimer() as gc_timer:
        records, pages, written = sync(
            arguments.source,
            database,
            page_size=arguments.page_size,
            max_pages=max_pages,
            timeout=arguments.timeout,
        )
    seconds = time.perf_counter() - started
    cpu_used = cpu_seconds() - cpu_started
    database.close()
    result = BaselineResult(
        records=records,
        pages=pages,
        written=written,
        seconds=seconds,
        cpu_seconds=cpu_used,
        gc_seconds=gc_timer.seconds,
        records_per_second=records / seconds,
        peak_rss_mb=peak_rss_mb(),
    )
    json.dump(asdict(result), sys.stdout)
    print()


if __name__ == "__main__":
    main()
