"""Webhook delivery throughput, and the delay from commit to delivery at a steady event rate.

Run from the repository root::

    .venv/bin/python -m bench.webhooks                          # 5,000 events, then 100/s for 30 s
    .venv/bin/python -m bench.webhooks --events 20000 --rate 100 --seconds 60

The benchmark starts an HTTPS receiver (a minimal asyncio HTTP/1.1 server
with a certificate from a ``trustme`` test CA) in a child process on
127.0.0.1. The receiver responds with 200 at once and records each ``webhook-id``
with its arrival time. The
benchmark process runs the store (a fresh SQLite file), one endpoint and
the embedded ``DeliveryWorker``, as ``interlink serve`` does.

1. Throughput: ``--events`` events are written to the outbox first, then
   the worker starts; the figure is events delivered per second, from the
   worker's start until the last delivery succeeded. Fan-out is included.
2. Delay: with the worker running, one event per transaction is written at
   ``--rate`` per second for ``--seconds`` seconds. The delay of an event is
   its arrival time at the receiver minus the time its transaction
   committed. Both times come from ``time.time()`` on the same machine.

Every event must arrive, or the run fails. The output is a Markdown table
with the command, date and machine, ready for docs/benchmarks/webhooks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import httpx
from sqlalchemy import func, select

from interlink.crypto import generate_secret_key
from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.store.events import append_event
from interlink.store.tables import deliveries
from interlink.webhooks.delivery import WebhookDeliverer
from interlink.webhooks.endpoints import create_endpoint
from interlink.webhooks.urls import UrlGuard
from interlink.webhooks.worker import DeliveryWorker

DEFAULT_EVENTS = 5000
DEFAULT_RATE = 100.0
DEFAULT_SECONDS = 30.0
DEFAULT_CONCURRENCY = 32
# Targets on the project's 2-core machine.
TARGET_DELIVERIES_PER_SECOND = 300.0
TARGET_P99_DELAY_SECONDS = 1.0
# Upper bound on any wait for deliveries to finish, so a broken run ends.
MAX_WAIT_SECONDS = 600.0
STATUS_POLL_SECONDS = 0.05

_REPO_ROOT = Path(__file__).resolve().parents[1]


# The receiver (child process)


class _ReceiverProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection with keep-alive that records each ``webhook-id``.

    It responds with 200 at once. A general-purpose server (uvicorn with h11)
    spends more CPU per request, and on two cores the benchmark would then
    partly measure the receiver. ``GET /arrivals`` returns the records as JSON.
    """

    arrivals: ClassVar[list[tuple[str, float]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            request_line, *header_lines = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            if request_line.startswith("GET /arrivals "):
                body = json.dumps(self.arrivals).encode()
            else:
                self.arrivals.append((headers.get("webhook-id", ""), time.time()))
                body = b"ok"
            head = f"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n\r\n"
            self.transport.write(head.encode() + body)


def serve_receiver(cert_path: str, key_path: str) -> None:
    """Serve the recording receiver over TLS on 127.0.0.1 and print its port on stdout."""
    import socket
    import ssl

    async def serve() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        # With IPPROTO_TCP given, asyncio sets TCP_NODELAY on accepted connections. Without it
        # a response may wait for the client's delayed ACK, about 40 ms on Linux.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.bind(("127.0.0.1", 0))
        print(listener.getsockname()[1], flush=True)
        server = await asyncio.get_running_loop().create_server(_ReceiverProtocol, sock=listener, ssl=context)
        await server.serve_forever()

    asyncio.run(serve())


class ReceiverProcess:
    """The receiver in a child process, stopped by its PID."""

    def __init__(self, directory: Path) -> None:
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1")
        self.ca_bundle = directory / "ca.pem"
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        ca.cert_pem.write_to_path(str(self.ca_bundle))
        leaf.private_key_pem.write_to_path(str(key_path))
        leaf.cert_chain_pems[0].write_to_path(str(cert_path))
        command = [sys.executable, "-m", "bench.webhooks", "--serve-receiver", str(cert_path), str(key_path)]
        self.process = subprocess.Popen(command, cwd=_REPO_ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"https://127.0.0.1:{self.port}"

    async def arrivals(self) -> dict[str, float]:
        """Return the first arrival time of each webhook-id."""
        async with httpx.AsyncClient(verify=str(self.ca_bundle), timeout=60) as client:
            response = await client.get(f"{self.url}/arrivals")
        first: dict[str, float] = {}
        for message_id, arrived_at in response.json():
            first.setdefault(message_id, arrived_at)
        return first

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


# The sender (this process)


async def open_store(directory: Path, name: str) -> Runtime:
    settings = Settings(
        database_url=f"sqlite:///{directory / name}",
        secret_key=generate_secret_key(),
        webhook_allow_private=True,
    )
    runtime = Runtime(settings, workers=False)
    await runtime.start(migrate=True)
    return runtime


def new_worker(runtime: Runtime, ca_bundle: Path, concurrency: int) -> DeliveryWorker:
    guard = UrlGuard(allow_private=True)
    deliverer = WebhookDeliverer(runtime.db, runtime.credentials, guard=guard, ca_bundle=str(ca_bundle))
    return DeliveryWorker(runtime.db, deliverer, concurrency=concurrency)


async def succeeded_count(runtime: Runtime) -> int:
    async with runtime.db.read() as db:
        query = select(func.count()).select_from(deliveries).where(deliveries.c.status == "succeeded")
        return int((await db.execute(query)).scalar_one())


async def wait_for_deliveries(runtime: Runtime, expected: int) -> float:
    """Wait until ``expected`` deliveries succeeded; return the time it happened (``time.time()``)."""
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while await succeeded_count(runtime) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {await succeeded_count(runtime)} of {expected} deliveries succeeded in time"
            )
        await asyncio.sleep(STATUS_POLL_SECONDS)
    return time.time()


async def measure_throughput(
    directory: Path, receiver: ReceiverProcess, events: int, concurrency: int
) -> dict[str, float]:
    runtime = await open_store(directory, "throughput.sqlite3")
    try:
        guard = UrlGuard(allow_private=True)
        await create_endpoint(
            runtime.db, f"{receiver.url}/throughput", ["*"], credentials=runtime.credentials, guard=guard
        )
        batch = 100
        for start in range(0, events, batch):
            async with runtime.db.write() as db:
                for number in range(start, min(start + batch, events)):
                    await append_event(db, "sync.completed", {"run_id": f"run_{number}", "entity": "vendor"})

        worker = new_worker(runtime, receiver.ca_bundle, concurrency)
        started = time.time()
        worker.start()
        try:
            finished = await wait_for_deliveries(runtime, events)
        finally:
            await worker.stop()
    finally:
        await runtime.stop()
    elapsed = finished - started
    return {"events": events, "seconds": elapsed, "per_second": events / elapsed}


async def measure_delay(
    directory: Path, receiver: ReceiverProcess, rate: float, seconds: float, concurrency: int
) -> dict[str, float]:
    runtime = await open_store(directory, "delay.sqlite3")
    committed: dict[str, float] = {}
    try:
        guard = UrlGuard(allow_private=True)
        await create_endpoint(
            runtime.db, f"{receiver.url}/delay", ["*"], credentials=runtime.credentials, guard=guard
        )
        worker = new_worker(runtime, receiver.ca_bundle, concurrency)
        worker.start()
        try:
            total = int(rate * seconds)
            begin = time.monotonic()
            for number in range(total):
                pause = begin + number / rate - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                async with runtime.db.write() as db:
                    event_id = await append_event(db, "records.changed", {"run_id": f"run_{number}"})
                committed[event_id] = time.time()
            await wait_for_deliveries(runtime, total)
        finally:
            await worker.stop()
    finally:
        await runtime.stop()

    arrivals = await receiver.arrivals()
    missing = set(committed) - set(arrivals)
    if missing:
        raise RuntimeError(f"{len(missing)} events never reached the receiver")
    delays = sorted(arrivals[event_id] - committed[event_id] for event_id in committed)
    percentiles = statistics.quantiles(delays, n=100, method="inclusive")
    return {
        "events": len(delays),
        "rate": rate,
        "p50": percentiles[49],
        "p95": percentiles[94],
        "p99": percentiles[98],
        "max": delays[-1],
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, SQLite (WAL)"


def report(
    command: str, throughput: dict[str, float], delay: dict[str, float], concurrency: int, load: float
) -> str:
    ok_rate = throughput["per_second"] >= TARGET_DELIVERIES_PER_SECOND
    ok_delay = delay["p99"] < TARGET_P99_DELAY_SECONDS
    lines = [
        f"Command: `{command}`",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {machine()}",
        f"Load average (1 min) when the run started: {load:.1f}, from other processes on the machine",
        f"Worker: {concurrency} concurrent deliveries, HTTPS with keep-alive to a receiver on 127.0.0.1",
        "",
        "| measure | result | target |",
        "| --- | --- | --- |",
        f"| throughput, {throughput['events']:.0f} queued events "
        f"| {throughput['per_second']:.0f} deliveries/s ({throughput['seconds']:.1f} s) "
        f"| >= {TARGET_DELIVERIES_PER_SECOND:.0f}/s {'met' if ok_rate else 'MISSED'} |",
        f"| delay commit to delivery, p50 at {delay['rate']:.0f} events/s | {delay['p50'] * 1000:.0f} ms | |",
        f"| delay, p95 | {delay['p95'] * 1000:.0f} ms | |",
        f"| delay, p99 ({delay['events']:.0f} events) | {delay['p99'] * 1000:.0f} ms "
        f"| < {TARGET_P99_DELAY_SECONDS * 1000:.0f} ms {'met' if ok_delay else 'MISSED'} |",
        f"| delay, max | {delay['max'] * 1000:.0f} ms | |",
    ]
    return "\n".join(lines)


async def run(arguments: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="interlink-bench-webhooks-") as name:
        directory = Path(name)
        receiver = ReceiverProcess(directory)
        try:
            throughput = await measure_throughput(
                directory, receiver, arguments.events, arguments.concurrency
            )
            delay = await measure_delay(
                directory, receiver, arguments.rate, arguments.seconds, arguments.concurrency
            )
        finally:
            receiver.stop()
    command = shlex.join([".venv/bin/python", "-m", "bench.webhooks", *sys.argv[1:]])
    return report(command, throughput, delay, arguments.concurrency, load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--events", type=int, default=DEFAULT_EVENTS, help="events queued for the throughput run"
    )
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="events per second in the delay run")
    parser.add_argument(
        "--seconds", type=float, default=DEFAULT_SECONDS, help="length of the delay run, in seconds"
    )
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="deliveries the worker sends at once"
    )
    parser.add_argument("--serve-receiver", nargs=2, metavar=("CERT", "KEY"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_receiver:
        serve_receiver(*arguments.serve_receiver)
        return
    print(asyncio.run(run(arguments)))


if __name__ == "__main__":
    main()
