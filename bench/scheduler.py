"""The scheduler's own CPU cost for many connections, on SQLite.

Run from the repository root::

    .venv/bin/python -m bench.scheduler                  # 10,000 connections x 5 entities, PT15M, 15 min
    .venv/bin/python -m bench.scheduler --duration 120   # a shorter window, for a quick look

The benchmark creates a fresh SQLite store with ``--connections``
connections of an integration with five entities, all at the same
``--frequency``. It writes their schedules up front, each at its next grid
point, so the store is in steady state from the first second. Then it runs
the real scheduler loop (``Scheduler.start``, a tick every ``--tick``
seconds) for ``--duration`` seconds of wall-clock time with a dispatcher that
does nothing, so no sync is executed. A child process plays the workers: it
marks queued runs succeeded once a second, so the next due slot of a pair
finds no run in the way. Its CPU is not counted.

The reported cost is the CPU time (user plus system, all threads) of the
scheduler process during the window divided by the window's wall-clock time.
"Keeps up" means that at the end no schedule is overdue by more than two
ticks. After the window, every schedule is made overdue by a day and one
tick is timed: the catch-up after a long downtime.

Logging stays at Python's default level (WARNING), so the INFO line per
queued run is not formatted or written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import TypeAdapter
from sqlalchemy import func, insert, select, update

from interlink.connectors.base import Connector, ConnectorContext, EntityCapabilities, Integration
from interlink.model import new_id
from interlink.store import Database
from interlink.store.migrate import upgrade
from interlink.store.tables import connections, sync_runs, sync_schedules
from interlink.sync.scheduler import Scheduler, full_key, incremental_key, next_due

DEFAULT_CONNECTIONS = 10_000
DEFAULT_FREQUENCY = "PT15M"
DEFAULT_DURATION = 900.0
DEFAULT_TICK = 10.0
# Target: the scheduler stays below this share of one core while it keeps up.
TARGET_CPU_SHARE = 0.05
ENTITIES = ("purchase_order", "work_order", "asset", "part", "vendor")
INTEGRATION_NAME = "bench_scheduled"
WORKER_POLL_SECONDS = 1.0
INSERT_CHUNK = 2000

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _never_built(context: ConnectorContext) -> Connector:
    raise RuntimeError("the scheduler benchmark executes no sync, so no connector is built")


BENCH_INTEGRATION = Integration(
    name=INTEGRATION_NAME,
    label="Scheduler benchmark",
    description="Five entities and no connector, read only by the scheduler.",
    auth_schemes=(),
    entities=tuple(EntityCapabilities(entity) for entity in ENTITIES),
    build=_never_built,
)


def lookup(name: str) -> Integration | None:
    return BENCH_INTEGRATION if name == INTEGRATION_NAME else None


class NoOpDispatcher:
    """A dispatcher that counts run ids and executes nothing: only the scheduler is measured."""

    def __init__(self) -> None:
        self.count = 0

    async def dispatch(self, run_id: str, *, priority: int = 0) -> None:
        self.count += 1


@dataclass(frozen=True)
class Result:
    connections: int
    schedules: int
    frequency: str
    duration: float
    cpu_seconds: float
    runs_queued: int
    expected_runs: int
    ticks: int
    max_tick_seconds: float
    overdue_at_end: int
    catch_up_seconds: float
    catch_up_cpu_seconds: float
    catch_up_runs: int

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.duration


async def populate(db: Database, count: int, frequency: timedelta, now: datetime) -> list[datetime]:
    """Insert the connections and their schedules, each at its next grid point; return the due times."""
    rng = random.Random(1)
    settings = {"sync_frequency": TypeAdapter(timedelta).dump_python(frequency, mode="json")}
    connection_rows = []
    schedule_rows = []
    due_times: list[datetime] = []
    for _ in range(count):
        connection_id = new_id("con")
        connection_rows.append(
            {
                "id": connection_id,
                "integration": INTEGRATION_NAME,
                "auth_scheme": "none",
                "end_user_id": connection_id,
                "credentials": b"-",
                "status": "active",
                "settings": settings,
                "created_at": now,
                "updated_at": now,
            }
        )
        for entity in ENTITIES:
            # Half an interval back, so the first due time falls within the next interval.
            start = now - frequency / 2
            due = next_due(incremental_key(connection_id, entity), frequency, after=start, rng=rng)
            due_times.append(due)
            schedule_rows.append(
                {
                    "connection_id": connection_id,
                    "entity": entity,
                    "next_incremental_at": due,
                    "next_full_at": next_due(
                        full_key(connection_id, entity), timedelta(days=7), after=now, rng=rng
                    ),
                    "updated_at": now,
                }
            )
    async with db.write() as connection:
        for offset in range(0, len(connection_rows), INSERT_CHUNK):
            await connection.execute(insert(connections), connection_rows[offset : offset + INSERT_CHUNK])
        for offset in range(0, len(schedule_rows), INSERT_CHUNK):
            await connection.execute(insert(sync_schedules), schedule_rows[offset : offset + INSERT_CHUNK])
    return due_times


def expected_runs(due_times: list[datetime], frequency: timedelta, end: datetime) -> int:
    """Estimate the runs due before ``end``: each first due time, then one per interval on its grid."""
    return sum((end - due) // frequency + 1 for due in due_times if due <= end)


def emulate_workers(path: str, stop_file: str) -> None:
    """Mark queued runs succeeded once a second until ``stop_file`` exists (runs in a child process)."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        while not os.path.exists(stop_file):
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
            connection.execute(
                "UPDATE sync_runs SET status = 'succeeded', finished_at = ? WHERE status = 'queued'", (now,)
            )
            time.sleep(WORKER_POLL_SECONDS)
    finally:
        connection.close()


async def measure(args: argparse.Namespace, workdir: Path) -> Result:
    path = workdir / "scheduler.sqlite3"
    db = Database(f"sqlite:///{path}")
    await upgrade(db)
    frequency = TypeAdapter(timedelta).validate_python(args.frequency)
    started = datetime.now(UTC)
    due_times = await populate(db, args.connections, frequency, started)

    stop_file = workdir / "stop"
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measured window
        [sys.executable, "-m", "bench.scheduler", "--emulate-workers", str(path), str(stop_file)],
        cwd=_REPO_ROOT,
    )
    dispatcher = NoOpDispatcher()
    scheduler = Scheduler(
        db, dispatcher, clock=lambda: datetime.now(UTC), interval=args.tick, integration_lookup=lookup
    )
    tick_seconds: list[float] = []
    tick_times: list[datetime] = []
    plain_tick = scheduler.tick

    async def timed_tick() -> int:
        tick_times.append(datetime.now(UTC))
        tick_started = time.monotonic()
        queued = await plain_tick()
        tick_seconds.append(time.monotonic() - tick_started)
        return queued

    scheduler.tick = timed_tick  # type: ignore[method-assign]
    try:
        cpu_before, wall_before = time.process_time(), time.monotonic()
        scheduler.start()
        await asyncio.sleep(args.duration)
        await scheduler.stop()
        cpu_seconds, duration = time.process_time() - cpu_before, time.monotonic() - wall_before
        runs_queued = dispatcher.count
    finally:
        stop_file.touch()
        worker.wait(timeout=30)

    late = datetime.now(UTC) - timedelta(seconds=2 * args.tick)
    async with db.write() as connection:
        overdue = (
            await connection.execute(
                select(func.count())
                .select_from(sync_schedules)
                .where(sync_schedules.c.next_incremental_at < late)
            )
        ).scalar_one()
        await connection.execute(
            update(sync_runs).where(sync_runs.c.status == "queued").values(status="succeeded")
        )
        await connection.execute(
            update(sync_schedules).values(next_incremental_at=datetime.now(UTC) - timedelta(days=1))
        )

    catch_up = Scheduler(
        db, NoOpDispatcher(), clock=lambda: datetime.now(UTC), integration_lookup=lookup, max_batches=10_000
    )
    cpu_before, wall_before = time.process_time(), time.monotonic()
    catch_up_runs = await catch_up.tick()
    catch_up_cpu, catch_up_seconds = time.process_time() - cpu_before, time.monotonic() - wall_before
    await db.dispose()

    return Result(
        connections=args.connections,
        schedules=args.connections * len(ENTITIES),
        frequency=args.frequency,
        duration=duration,
        cpu_seconds=cpu_seconds,
        runs_queued=runs_queued,
        expected_runs=expected_runs(due_times, frequency, max(tick_times, default=started)),
        ticks=len(tick_seconds),
        max_tick_seconds=max(tick_seconds, default=0.0),
        overdue_at_end=int(overdue),
        catch_up_seconds=catch_up_seconds,
        catch_up_cpu_seconds=catch_up_cpu,
        catch_up_runs=catch_up_runs,
    )


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def report(result: Result, command: str) -> str:
    verdict = "met" if result.cpu_share < TARGET_CPU_SHARE and result.overdue_at_end == 0 else "NOT met"
    rows = [
        (
            "connections x entities",
            f"{result.connections:,} x {len(ENTITIES)} = {result.schedules:,} schedules",
        ),
        ("sync frequency", result.frequency),
        ("window (wall clock)", f"{result.duration:.0f} s, {result.ticks} ticks"),
        ("scheduler CPU time", f"{result.cpu_seconds:.2f} s"),
        ("CPU share of one core", f"{result.cpu_share:.2%} (target below {TARGET_CPU_SHARE:.0%}: {verdict})"),
        ("runs queued", f"{result.runs_queued:,} (due by the last tick: about {result.expected_runs:,})"),
        ("slowest tick", f"{result.max_tick_seconds * 1000:.0f} ms"),
        ("schedules overdue at the end", f"{result.overdue_at_end}"),
        (
            "catch-up after a day down",
            f"{result.catch_up_runs:,} runs in {result.catch_up_seconds:.1f} s "
            f"({result.catch_up_cpu_seconds:.1f} s CPU)",
        ),
    ]
    lines = [
        f"Command: `{command}`",
        f"Date: {datetime.now(UTC):%Y-%m-%d}",
        f"Machine: {machine()}",
        "",
        "| measure | value |",
        "| --- | --- |",
        *[f"| {name} | {value} |" for name, value in rows],
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--connections", type=int, default=DEFAULT_CONNECTIONS, help="Connections to schedule."
    )
    parser.add_argument(
        "--frequency", default=DEFAULT_FREQUENCY, help="sync_frequency of every connection, as ISO 8601."
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        help="Measured window, in seconds of wall-clock time.",
    )
    parser.add_argument(
        "--tick", type=float, default=DEFAULT_TICK, help="Scheduler tick interval, in seconds."
    )
    parser.add_argument(
        "--emulate-workers", nargs=2, metavar=("DATABASE", "STOP_FILE"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.emulate_workers:
        emulate_workers(*args.emulate_workers)
        return
    command = shlex.join([".venv/bin/python", "-m", "bench.scheduler", *argv])
    with tempfile.TemporaryDirectory(prefix="interlink-bench-scheduler-") as workdir:
        result = asyncio.run(measure(args, Path(workdir)))
    print(report(result, command))


if __name__ == "__main__":
    main(sys.argv[1:])
