"""Matrix message sync against a real Synapse: how much of the time is Interlink's own.

Run from the repository root::

    .venv/bin/python -m bench.matrix_sync                       # 10,000 messages, 3 repeats
    .venv/bin/python -m bench.matrix_sync --messages 2000 --repeats 1
    .venv/bin/python -m bench.matrix_sync --data /dev/shm/matrix-bench   # seed once, reuse later

The benchmark starts Synapse from ``tests.support.synapse`` (on /dev/shm
when it exists, because Synapse syncs its SQLite file for every event),
registers one user exempt from rate limits, and seeds ``--messages``
messages spread over ``--rooms`` rooms, sending ``--concurrency`` at a
time. Each repeat then creates a Matrix connection in a fresh Interlink
SQLite store and runs one message sync with ``SyncEngine.execute_run``,
which reads every message through ``/sync`` and back-fills through
``/rooms/{roomId}/messages``.

The HTTP client of that sync goes through a transport that adds up the
time spent awaiting each response, body included. That time is spent in
Synapse and on the loopback. The rest of the run's wall time is
Interlink's own share: mapping, hashing, committing pages, the engine's
bookkeeping. The output is a Markdown table with the command, date and
machine, ready for docs/benchmarks/matrix.md. With ``--data DIR`` the
seeded Synapse is kept in DIR, and a later run with the same DIR and the
same seeding options starts it again instead of seeding anew.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from interlink.connections import create_connection
from interlink.connectors.http import create_client
from interlink.crypto import generate_secret_key
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.sync.requests import request_syncs
from tests.support.synapse import MatrixUser, SynapseServer

SHARED_MEMORY = Path("/dev/shm")  # noqa: S108  # mkdtemp makes a private directory there
MAX_SEED_SECONDS = 1800.0


class TimedTransport(httpx.AsyncBaseTransport):
    """Wraps the default transport and adds up the time spent awaiting responses and their bodies."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.waited = 0.0
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        self.waited += time.perf_counter() - started
        self.requests += 1
        headers = [(name, value) for name, value in response.headers.items() if name != "content-encoding"]
        return httpx.Response(response.status_code, headers=headers, content=content)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True)
class Measurement:
    total_s: float
    http_s: float
    requests: int
    records: int

    @property
    def interlink_s(self) -> float:
        return self.total_s - self.http_s

    @property
    def interlink_share(self) -> float:
        return self.interlink_s / self.total_s


async def seed(synapse: SynapseServer, messages: int, rooms: int, concurrency: int) -> MatrixUser:
    """Send ``messages`` messages over ``rooms`` rooms, ``concurrency`` requests at a time."""
    user = await MatrixUser.create(synapse, "bench")
    room_ids = [await user.create_room(f"Bench room {number}") for number in range(rooms)]
    deadline = time.monotonic() + MAX_SEED_SECONDS
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        for start in range(0, messages, concurrency):
            if time.monotonic() > deadline:
                raise RuntimeError(f"seeding took more than {MAX_SEED_SECONDS:.0f} s; stopped at {start}")
            batch = range(start, min(start + concurrency, messages))
            await asyncio.gather(
                *(user.say(room_ids[number % rooms], f"reading {number}", client=client) for number in batch)
            )
    return user


async def measure(directory: Path, user: MatrixUser) -> Measurement:
    """Sync every message of ``user`` into a fresh store and time it."""
    settings = Settings(
        database_url=f"sqlite:///{directory / 'interlink.sqlite3'}", secret_key=generate_secret_key()
    )
    transport = TimedTransport()
    runtime = Runtime(settings, workers=False, http_factory=lambda: create_client(transport=transport))
    await runtime.start(migrate=True)
    try:
        created = await create_connection(
            runtime.db,
            runtime.credentials,
            runtime.http_factory,
            integration_name="matrix",
            end_user={"id": "bench"},
            credentials={"homeserver_url": user.url, "access_token": user.access_token},
            auth_scheme=None,
            settings=ConnectionSettings(),
        )
        (run,) = await request_syncs(
            runtime.db,
            None,
            connection_id=created.connection.id,
            entities=["message"],
            mode="incremental",
            trigger="manual",
            now=runtime.clock(),
        )
        transport.waited, transport.requests = 0.0, 0  # leave out the connection check
        started = time.perf_counter()
        finished = await runtime.engine.execute_run(run.id)
        total = time.perf_counter() - started
    finally:
        await runtime.stop()
    if finished is None or finished.status != "succeeded":
        raise RuntimeError(f"the sync did not succeed: {finished}")
    return Measurement(total, transport.waited, transport.requests, finished.counts["created"])


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    system = f"{platform.system()} {platform.release()}"
    return f"{system}, {os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def work_directory() -> Path:
    base = SHARED_MEMORY if SHARED_MEMORY.is_dir() else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="interlink-bench-", dir=base))


async def seeded_synapse(
    directory: Path, arguments: argparse.Namespace
) -> tuple[SynapseServer, MatrixUser, float]:
    """Start the Synapse seeded in ``directory`` before, or seed a new one there; return the seeding time."""
    marker = directory / "seeded.json"
    options = {"messages": arguments.messages, "rooms": arguments.rooms}
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved["options"] == options:
            synapse = SynapseServer(
                directory / "synapse",
                port=saved["port"],
                shared_secret=saved["shared_secret"],
                admin_token=saved["admin_token"],
            )
            await synapse.start()
            return synapse, MatrixUser(synapse.url, saved["user_id"], saved["access_token"]), saved["seed_s"]
        shutil.rmtree(directory / "synapse", ignore_errors=True)

    synapse = SynapseServer(directory / "synapse")
    await synapse.start()
    started = time.perf_counter()
    user = await seed(synapse, arguments.messages, arguments.rooms, arguments.concurrency)
    seed_s = time.perf_counter() - started
    saved = {
        "options": options,
        "port": synapse.port,
        "shared_secret": synapse.shared_secret,
        "admin_token": synapse.admin_token,
        "user_id": user.user_id,
        "access_token": user.access_token,
        "seed_s": seed_s,
    }
    marker.write_text(json.dumps(saved))
    return synapse, user, seed_s


async def main(arguments: argparse.Namespace) -> None:
    keep = arguments.data is not None
    directory = Path(arguments.data) if keep else work_directory()
    directory.mkdir(parents=True, exist_ok=True)
    synapse: SynapseServer | None = None
    try:
        synapse, user, seed_s = await seeded_synapse(directory, arguments)
        measurements = []
        for _ in range(arguments.repeats):
            store = Path(tempfile.mkdtemp(prefix="store-", dir=directory))
            measurements.append(await measure(store, user))
            shutil.rmtree(store, ignore_errors=True)
            if measurements[-1].records != arguments.messages:
                raise RuntimeError(
                    f"synced {measurements[-1].records} messages, expected {arguments.messages}"
                )
    finally:
        if synapse is not None:
            synapse.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    report(arguments, seed_s, measurements)


def report(arguments: argparse.Namespace, seed_s: float, measurements: list[Measurement]) -> None:
    command = shlex.join([".venv/bin/python", "-m", "bench.matrix_sync", *sys.argv[1:]])
    print(f"Command: `{command}`  ")
    print(f"Date: {datetime.now(UTC):%Y-%m-%d}  ")
    print(f"Machine: {machine()}  ")
    print(
        f"Seeded {arguments.messages} messages in {arguments.rooms} rooms in {seed_s:.1f} s "
        f"({arguments.concurrency} sends at a time)\n"
    )
    print("| repeat | records | requests | total s | awaiting Synapse s | Interlink s | Interlink share |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for number, item in enumerate(measurements, start=1):
        print(
            f"| {number} | {item.records} | {item.requests} | {item.total_s:.2f} | {item.http_s:.2f} "
            f"| {item.interlink_s:.2f} | {item.interlink_share:.0%} |"
        )
    median = statistics.median(item.interlink_share for item in measurements)
    print(f"\nMedian Interlink share: {median:.0%} (target: at most 30%)")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=10_000, help="messages to seed and sync")
    parser.add_argument("--rooms", type=int, default=10, help="rooms the messages are spread over")
    parser.add_argument("--concurrency", type=int, default=40, help="messages sent at a time while seeding")
    parser.add_argument("--repeats", type=int, default=3, help="syncs into fresh stores")
    parser.add_argument("--data", help="directory that keeps the seeded Synapse for later runs")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_arguments()))
