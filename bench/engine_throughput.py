"""Sync engine throughput and memory, next to the hand-written baseline in ``bench.baseline``.

Run from the repository root::

    .venv/bin/python -m bench.engine_throughput                      # 100,000 records
    .venv/bin/python -m bench.engine_throughput --records 1000000    # peak memory at a million

The benchmark starts ``bench.paged_source`` in a child process. Each repeat
then syncs all of its purchase orders into two fresh SQLite files: once with
the engine (``SyncEngine.execute_run`` on a store that ``Runtime`` created
and migrated) and once with the baseline. Each contender runs in a child
process of its own, times its sync from the first request to the last
commit, and reports its CPU time and peak RSS. So neither the source server
nor the other contender counts against it. Afterwards both SQLite files
must contain every record, and sampled records must carry equal unified and
raw JSON. The output is a Markdown report with the command, date and
machine, ready for docs/benchmarks/engine.md.

The engine side reads through a benchmark-only integration defined here (a
pure mapping and a reader on the shared HTTP layer). It is not registered in
``interlink.connectors``, so no Interlink process ever offers it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.baseline import GcTimer, cpu_seconds, peak_rss_mb
from bench.paged_source import run_source
from interlink.connectors.base import (
    AuthScheme,
    Connector,
    ConnectorContext,
    EntityCapabilities,
    EntityReader,
    EntityWriter,
    Integration,
    Page,
    ReadWindow,
    SourceRecord,
)
from interlink.connectors.errors import SourceDataError, SourceTimeout
from interlink.connectors.http import abandon, request_ahead, send
from interlink.crypto import generate_secret_key
from interlink.model import PurchaseOrder, PurchaseOrderLine, Ref, reference
from interlink.runtime import Runtime, freeze_startup_objects
from interlink.settings import Settings
from interlink.store.connections import insert_connection
from interlink.sync.engine import SyncEngine
from interlink.sync.requests import request_syncs

DEFAULT_RECORDS = 100_000
DEFAULT_PAGE_SIZE = 1000
DEFAULT_TIMEOUT = 3600.0
# Targets: the engine syncs at least this share of the baseline's records per second ...
TARGET_RATIO = 0.7
# ... and its process stays below this peak RSS, in MB (10**6 bytes), at a million records.
TARGET_PEAK_RSS_MB = 200.0
INTEGRATION_NAME = "bench_paged_source"
LOOKBACK = timedelta(minutes=5)

_REPO_ROOT = Path(__file__).resolve().parents[1]

# Source status -> unified purchase order status; bench.baseline maps the same way.
_STATUSES = {
    "draft": "draft",
    "confirmed": "ordered",
    "processing": "partially_received",
    "done": "received",
    "cancelled": "cancelled",
}


# The benchmark integration: pure mapping, then the reader.


def map_purchase_order(connection_id: str, raw: Mapping[str, Any]) -> SourceRecord:
    """Map one source purchase order to a unified record; pydantic parses dates and decimals."""
    data = PurchaseOrder(
        number=raw["number"],
        status=_STATUSES.get(raw["status"]),
        remote_status=raw["status"],
        vendor=_ref(connection_id, "vendor", raw["vendor_id"]),
        order_date=raw["order_date"],
        expected_delivery_date=raw["expected_date"],
        currency=raw["currency"],
        total_net=raw["total_net"],
        total_tax=raw["total_tax"],
        total_gross=raw["total_gross"],
        lines=[_map_line(connection_id, line) for line in raw["lines"]],
    )
    return SourceRecord(
        remote_id=str(raw["id"]),
        data=data,
        raw=raw,
        remote_created_at=datetime.fromisoformat(raw["created_at"]),
        remote_updated_at=datetime.fromisoformat(raw["modified_at"]),
    )


def _map_line(connection_id: str, line: Mapping[str, Any]) -> PurchaseOrderLine:
    return PurchaseOrderLine(
        remote_id=str(line["line"]),
        line_number=line["line"],
        part=_ref(connection_id, "part", line["item_id"]),
        description=line["description"],
        quantity=line["quantity"],
        unit=line["unit"],
        unit_price=line["unit_price"],
        line_total=line["amount"],
    )


def _ref(connection_id: str, entity: str, remote_id: str) -> Ref:
    return reference(connection_id, entity, remote_id)


class PurchaseOrderReader:
    """Pages through the source's purchase orders by id, resuming after a committed cursor.

    The cursor is JSON: the last id read, its ``modified_at`` (the high-water
    mark an incremental read restarts from, minus the lookback), and whether
    it is the middle of a full pass.
    """

    def __init__(
        self, context: ConnectorContext, base_url: str, *, page_size: int, max_pages: int, timeout: float
    ) -> None:
        self.context = context
        self.url = f"{base_url}/purchase-orders"
        self.page_size = page_size
        self.max_pages = max_pages
        self.timeout = timeout

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        position = json.loads(cursor) if cursor else {}
        full = window.mode == "full"
        after = position.get("after", 0) if full and position.get("full") else 0
        since: datetime | None = window.history_start if full else None
        high_water = position.get("modified_at")
        if not full and high_water is not None:
            since = datetime.fromisoformat(high_water) - LOOKBACK

        deadline = time.monotonic() + self.timeout
        # As Interlink's connectors do, the request for the next page goes out before the
        # current page is mapped, so the source serves it meanwhile.
        pending = await request_ahead(self._fetch(after, since))
        try:
            for _ in range(self.max_pages):
                if time.monotonic() > deadline:
                    limit = self.timeout
                    raise SourceTimeout(f"reading {self.url} timed out after {limit} s; raise --timeout")
                body = await pending
                items = body["data"]
                last = body["next_after"] is None
                if items:
                    after = items[-1]["id"]
                    high_water = items[-1]["modified_at"]
                if not last:
                    pending = await request_ahead(self._fetch(after, since))
                records = [map_purchase_order(self.context.connection_id, item) for item in items]
                position = {"after": after, "modified_at": high_water, "full": full and not last}
                next_cursor = json.dumps(position)
                yield Page(records=records, cursor=next_cursor, complete=full and last)
                if last:
                    return
            raise SourceDataError(f"{self.url} served more than {self.max_pages} pages; raise --records")
        finally:
            await abandon(pending)

    async def _fetch(self, after: int, since: datetime | None) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": self.page_size, "after": after}
        if since is not None:
            params["modified_since"] = since.isoformat()
        http = self.context.http
        response = await send(http, http.build_request("GET", self.url, params=params))
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise SourceDataError(f"{self.url} returned a body without a data list")
        return body


class _BenchConnector:
    def __init__(self, reader: PurchaseOrderReader) -> None:
        self._reader = reader

    async def check(self) -> None:
        return None

    def reader(self, entity: str) -> EntityReader:
        if entity != "purchase_order":
            raise ValueError(f"the benchmark integration reads only purchase_order, not {entity!r}")
        return self._reader

    def writer(self, entity: str) -> EntityWriter | None:
        return None


def bench_integration(base_url: str, *, page_size: int, max_pages: int, timeout: float) -> Integration:
    """Declare the benchmark integration that reads purchase orders from ``bench.paged_source``."""

    def build(context: ConnectorContext) -> Connector:
        reader = PurchaseOrderReader(
            context, base_url, page_size=page_size, max_pages=max_pages, timeout=timeout
        )
        return _BenchConnector(reader)

    return Integration(
        name=INTEGRATION_NAME,
        label="Benchmark paged source",
        description="Purchase orders from bench.paged_source, for the engine benchmark only.",
        auth_schemes=(AuthScheme("none", "No authentication", ()),),
        entities=(EntityCapabilities("purchase_order"),),
        build=build,
        lookback=LOOKBACK,
    )


# One contender per child process.


@dataclass(frozen=True)
class ContenderResult:
    """Figures of one sync by one contender, as its child process reports them."""

    records: int
    seconds: float
    cpu_seconds: float
    gc_seconds: float
    records_per_second: float
    peak_rss_mb: float


async def run_engine(
    source_url: str,
    database_path: Path,
    *,
    records: int,
    page_size: int,
    mode: str,
    read_timeout: float,
    gc_freeze: bool = True,
) -> ContenderResult:
    """Sync every record of the source with ``SyncEngine.execute_run`` into a fresh store."""
    settings = Settings(database_url=f"sqlite:///{database_path}", secret_key=generate_secret_key())
    runtime = Runtime(settings, workers=False)
    await runtime.start(migrate=True)
    try:
        async with runtime.db.write() as db:
            connection = await insert_connection(
                db,
                integration=INTEGRATION_NAME,
                auth_scheme="none",
                end_user_id="bench",
                end_user_name=None,
                end_user_email=None,
                credentials=runtime.credentials.encrypt({}),
                settings={"history_days": 3650},
            )
        integration = bench_integration(
            source_url, page_size=page_size, max_pages=records // page_size + 2, timeout=read_timeout
        )
        engine = SyncEngine(
            runtime.db,
            runtime.credentials,
            integration_lookup=lambda name: integration if name == integration.name else None,
        )
        (run,) = await request_syncs(
            runtime.db,
            None,
            connection_id=connection.id,
            entities=["purchase_order"],
            mode=mode,
            trigger="manual",
            now=datetime.now(UTC),
        )

        if gc_freeze:
            # As `interlink serve` and `interlink sync` do once started.
            freeze_startup_objects()
        started = time.perf_counter()
        cpu_started = cpu_seconds()
        with GcTimer() as gc_timer:
            finished = await engine.execute_run(run.id)
        seconds = time.perf_counter() - started
        cpu_used = cpu_seconds() - cpu_started
    finally:
        await runtime.stop()

    if finished is None or finished.status != "succeeded":
        error = finished.error if finished is not None else "the run was not executed"
        raise RuntimeError(f"the engine run did not succeed: {error}")
    return ContenderResult(
        records=finished.fetched,
        seconds=seconds,
        cpu_seconds=cpu_used,
        gc_seconds=gc_timer.seconds,
        records_per_second=finished.fetched / seconds,
        peak_rss_mb=peak_rss_mb(),
    )


def run_child(command: list[str], timeout: float) -> ContenderResult:
    """Run a contender's child process and parse the JSON line it prints last."""
    completed = subprocess.run(
        command, cwd=_REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} exited with {completed.returncode}:\n{completed.stderr[-4000:]}"
        )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return ContenderResult(**{name: figures[name] for name in ContenderResult.__dataclass_fields__})


# Checking that both contenders stored the same data.


def check_stores(engine_database: Path, baseline_database: Path, records: int) -> None:
    """Raise ``RuntimeError`` unless both stores contain every record with equal unified and raw JSON.

    Reference ids differ, because they are derived from the connection id,
    which differs between the stores; only their remote ids are compared.
    """
    with (
        closing(sqlite3.connect(engine_database)) as engine,
        closing(sqlite3.connect(baseline_database)) as baseline,
    ):
        engine_count = engine.execute(
            "SELECT count(*) FROM records WHERE entity = 'purchase_order' AND NOT deleted"
        ).fetchone()[0]
        baseline_count = baseline.execute("SELECT count(*) FROM purchase_orders").fetchone()[0]
        if engine_count != records or baseline_count != records:
            raise RuntimeError(
                f"expected {records} records in each store, found {engine_count} (engine) "
                f"and {baseline_count} (baseline)"
            )
        for remote_id in sorted({1, records // 2, records}):
            engine_row = engine.execute(
                "SELECT data, raw FROM records WHERE entity = 'purchase_order' AND remote_id = ?",
                (str(remote_id),),
            ).fetchone()
            baseline_row = baseline.execute(
                "SELECT data, raw FROM purchase_orders WHERE remote_id = ?", (str(remote_id),)
            ).fetchone()
            check_same_json(f"record {remote_id}", engine_row, baseline_row)


def check_same_json(what: str, engine_row: Sequence[str], baseline_row: Sequence[str]) -> None:
    """Raise unless both stores' data and raw JSON of ``what`` are equal, reference ids aside."""
    for column, engine_value, baseline_value in zip(("data", "raw"), engine_row, baseline_row, strict=True):
        if _without_ref_ids(json.loads(engine_value)) != _without_ref_ids(json.loads(baseline_value)):
            raise RuntimeError(f"{what}: the stores contain different {column} JSON")


def _without_ref_ids(value: Any) -> Any:
    if isinstance(value, dict):
        is_ref = set(value) == {"id", "remote_id"}
        return {key: _without_ref_ids(item) for key, item in value.items() if not (is_ref and key == "id")}
    if isinstance(value, list):
        return [_without_ref_ids(item) for item in value]
    return value


# The report.


def machine_description() -> str:
    """Describe the CPU, operating system, Python and SQLite this process runs on."""
    os_name = platform.platform()
    with suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    cpu = platform.processor() or platform.machine()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), {os_name}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


def report(command: str, records: int, engine: list[ContenderResult], baseline: list[ContenderResult]) -> str:
    """Format the figures as Markdown: medians over the repeats, and the highest peak RSS of any repeat."""
    engine_row = _summary(engine)
    baseline_row = _summary(baseline)
    rate_ratio = engine_row["records_per_second"] / baseline_row["records_per_second"]
    cpu_ratio = baseline_row["cpu_us_per_record"] / engine_row["cpu_us_per_record"]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        f"- Command: `{command}`",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine_description()}",
        f"- Load average after the run (1, 5, 15 min): {load}",
        f"- Records: {records:,}, repeats: {len(engine)}",
        "",
        "| contender | records/s | seconds | CPU µs per record | of it in GC | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        _table_row("engine", engine_row),
        _table_row("baseline", baseline_row),
        "",
        f"Engine / baseline records per second: {rate_ratio:.2f}; by CPU time per record: {cpu_ratio:.2f} "
        f"(target at least {TARGET_RATIO}). Engine peak RSS: {engine_row['peak_rss_mb']:.0f} MB "
        f"(target below {TARGET_PEAK_RSS_MB:.0f} MB at 1,000,000 records).",
    ]
    return "\n".join(lines)


def _summary(results: list[ContenderResult]) -> dict[str, float]:
    return {
        "records_per_second": statistics.median(result.records_per_second for result in results),
        "seconds": statistics.median(result.seconds for result in results),
        "cpu_us_per_record": statistics.median(
            result.cpu_seconds / result.records * 1_000_000 for result in results
        ),
        "gc_us_per_record": statistics.median(
            result.gc_seconds / result.records * 1_000_000 for result in results
        ),
        "peak_rss_mb": max(result.peak_rss_mb for result in results),
    }


def _table_row(name: str, summary: dict[str, float]) -> str:
    return (
        f"| {name} | {summary['records_per_second']:,.0f} | {summary['seconds']:.1f} "
        f"| {summary['cpu_us_per_record']:.0f} | {summary['gc_us_per_record']:.0f} "
        f"| {summary['peak_rss_mb']:.0f} |"
    )


def benchmark(arguments: argparse.Namespace) -> str:
    """Run the repeats against one source and return the report."""
    records: int = arguments.records
    page_size: int = arguments.page_size
    engine_results: list[ContenderResult] = []
    baseline_results: list[ContenderResult] = []
    with tempfile.TemporaryDirectory(prefix="interlink-bench-") as folder, run_source(records) as url:
        for repeat in range(1, arguments.repeat + 1):
            engine_database = Path(folder) / f"engine-{repeat}.sqlite3"
            baseline_database = Path(folder) / f"baseline-{repeat}.sqlite3"
            common = ["--source", url, "--records", str(records), "--page-size", str(page_size)]
            common += ["--timeout", str(arguments.timeout)]
            engine_command = [sys.executable, "-m", "bench.engine_throughput", "--contender", "engine"]
            engine_command += [*common, "--database", str(engine_database), "--mode", arguments.mode]
            engine_command.append("--gc-freeze" if arguments.gc_freeze else "--no-gc-freeze")
            baseline_command = [sys.executable, "-m", "bench.baseline", *common]
            baseline_command += ["--database", str(baseline_database)]

            engine_results.append(run_child(engine_command, arguments.timeout + 60))
            baseline_results.append(run_child(baseline_command, arguments.timeout + 60))
            print(
                f"repeat {repeat}: engine {engine_results[-1].records_per_second:,.0f} records/s, "
                f"baseline {baseline_results[-1].records_per_second:,.0f} records/s",
                file=sys.stderr,
            )
            check_stores(engine_database, baseline_database, records)
            engine_database.unlink()
            baseline_database.unlink()
    command = shlex.join([".venv/bin/python", "-m", "bench.engine_throughput", *sys.argv[1:]])
    return report(command, records, engine_results, baseline_results)


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure the sync engine against a hand-written baseline.")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="purchase orders to sync")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE, help="records per page")
    parser.add_argument("--repeat", type=int, default=1, help="syncs per contender; medians are reported")
    parser.add_argument(
        "--mode", choices=("incremental", "full"), default="incremental", help="engine run mode"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="limit per sync, in seconds")
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="freeze the engine process's startup objects before the run, as `interlink serve` does",
    )
    # Used by the benchmark itself to start a contender in a child process.
    parser.add_argument("--contender", choices=("engine",), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    arguments = parser.parse_args()

    if arguments.contender == "engine":
        result = asyncio.run(
            run_engine(
                arguments.source,
                Path(arguments.database),
                records=arguments.records,
                page_size=arguments.page_size,
                mode=arguments.mode,
                read_timeout=arguments.timeout,
                gc_freeze=arguments.gc_freeze,
            )
        )
        json.dump(asdict(result), sys.stdout)
        print()
        return
    print(benchmark(arguments))


if __name__ == "__main__":
    main()
