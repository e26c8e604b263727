"""A fast local source of purchase orders, paged with a keyset cursor, for benchmarks.

``GET /purchase-orders`` returns ``{"data": [...], "next_after": ID | null}``
with records in ascending id order. Query parameters:

- ``limit``: records per page, 1 to 5000 (default 1000);
- ``after``: return only records whose id is greater (the keyset cursor);
- ``modified_since``: an RFC 3339 time with an offset; return only records
  whose ``modified_at`` is at or after it.

Record ``i`` (1 to ``--records``) is computed from ``i`` alone when it is
requested, so the server keeps no record list and serves a million records
in constant memory. Its ``modified_at`` is ``BASE_TIME`` plus ``i`` seconds,
so id order is also change order.

Building and serializing a page of 1000 records took about 27 ms of CPU on
the project's 2-core benchmark machine. To keep that time off the client's
critical path, the server starts building the next page as soon as it has
returned one, keeping up to ``READ_AHEAD_PAGES`` pages ready. A client that
pages forward then finds the next body built while it stored the previous
page.

Run it on its own with ``python -m bench.paged_source --records 100000``: it
binds 127.0.0.1 on a free port and prints its base URL as the first line of
its output. ``run_source`` does that in a child process, so the server's
CPU time and memory never count against the process being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import selectors
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOST = "127.0.0.1"
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
READ_AHEAD_PAGES = 2
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0

_REPO_ROOT = Path(__file__).resolve().parents[1]
_SOURCE_STATUSES = ("draft", "confirmed", "processing", "done", "cancelled")
_UNITS = ("pc", "kg", "m", "box")


def purchase_order(index: int) -> dict[str, Any]:
    """Build purchase order ``index`` (1-based); the same index always gives the same record."""
    # A multiplicative hash spreads consecutive indexes over unrelated values.
    mixed = (index * 2654435761) & 0xFFFFFFFF
    modified_at = BASE_TIME + timedelta(seconds=index)
    created_at = modified_at - timedelta(seconds=mixed % 86_400)
    order_date = created_at.date()
    lines = [_line(index, number) for number in range(1, 2 + mixed % 3)]
    net_cents = sum(line_cents for _, line_cents in lines)
    tax_cents = net_cents * 19 // 100
    return {
        "id": index,
        "number": f"PO{index:08d}",
        "vendor_id": f"V{(mixed >> 8) % 5000:05d}",
        "status": _SOURCE_STATUSES[(mixed >> 4) % len(_SOURCE_STATUSES)],
        "currency": "EUR" if mixed & 1 else "USD",
        "order_date": order_date.isoformat(),
        "expected_date": (order_date + timedelta(days=7 + mixed % 21)).isoformat(),
        "created_at": _format_time(created_at),
        "modified_at": _format_time(modified_at),
        "total_net": _format_cents(net_cents),
        "total_tax": _format_cents(tax_cents),
        "total_gross": _format_cents(net_cents + tax_cents),
        "lines": [line for line, _ in lines],
    }


def _line(index: int, number: int) -> tuple[dict[str, Any], int]:
    mixed = ((index * 31 + number) * 2246822519) & 0xFFFFFFFF
    quantity = 1 + mixed % 40
    price_cents = 100 + (mixed >> 6) % 50_000
    amount_cents = quantity * price_cents
    line = {
        "line": number,
        "item_id": f"P{(mixed >> 12) % 20_000:06d}",
        "description": f"Part {(mixed >> 12) % 20_000} for order {index}",
        "quantity": str(quantity),
        "unit": _UNITS[mixed % len(_UNITS)],
        "unit_price": _format_cents(price_cents),
        "amount": _format_cents(amount_cents),
    }
    return line, amount_cents


def _format_cents(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _format_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def first_index_modified_since(since: datetime) -> int:
    """Return the lowest record index whose ``modified_at`` is at or after ``since``."""
    return max(1, math.ceil((since - BASE_TIME).total_seconds()))


def page_body(start: int, stop: int, records: int) -> bytes:
    """Serialize the page of records ``start`` to ``stop`` (inclusive) of ``records``."""
    page = [purchase_order(index) for index in range(start, stop + 1)]
    body = {"data": page, "next_after": stop if stop < records else None}
    return json.dumps(body, separators=(",", ":")).encode()


def create_app(records: int) -> Starlette:
    """Create the source app serving ``records`` purchase orders."""
    # Bodies being built or built ahead, keyed by (start, stop), oldest first.
    ahead: dict[tuple[int, int], asyncio.Future[bytes]] = {}

    def build_ahead(start: int, stop: int) -> None:
        loop = asyncio.get_running_loop()
        ahead[(start, stop)] = loop.run_in_executor(None, page_body, start, stop, records)
        while len(ahead) > READ_AHEAD_PAGES:
            del ahead[next(iter(ahead))]

    async def list_purchase_orders(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", DEFAULT_PAGE_SIZE))
            after = int(request.query_params.get("after", 0))
            since_text = request.query_params.get("modified_since")
            since = datetime.fromisoformat(since_text) if since_text else None
        except ValueError as exc:
            return JSONResponse({"error": f"invalid query parameter: {exc}"}, status_code=400)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            return JSONResponse(
                {"error": f"limit {limit} is out of range; use 1 to {MAX_PAGE_SIZE}"}, status_code=400
            )
        if since is not None and since.tzinfo is None:
            return JSONResponse(
                {"error": f"modified_since {since_text!r} has no UTC offset; add Z or +00:00"},
                status_code=400,
            )

        start = max(after + 1, first_index_modified_since(since) if since else 1)
        stop = min(start + limit - 1, records)
        if start > records:
            return Response(page_body(start, stop, records), media_type="application/json")
        if (start, stop) not in ahead:
            build_ahead(start, stop)
        body = await ahead.pop((start, stop))
        if stop < records:
            build_ahead(stop + 1, min(stop + limit, records))
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/purchase-orders", list_purchase_orders)])


@contextmanager
def run_source(records: int, *, startup_timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """Start the source in a child process and yield its base URL; stop it when the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.paged_source", "--records", str(records)],
        cwd=_REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield _read_base_url(process, startup_timeout)
    finally:
        process.terminate()
        try:
            process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_base_url(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"the paged source did not print its URL within {timeout} s")
    line = process.stdout.readline().strip()
    if not line.startswith("http://"):
        raise RuntimeError(f"the paged source exited or printed {line!r} instead of its URL")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="number of purchase orders served")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free one")
    arguments = parser.parse_args()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, arguments.port))
    listener.listen(128)
    print(f"http://{HOST}:{listener.getsockname()[1]}", flush=True)

    config = uvicorn.Config(create_app(arguments.records), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
