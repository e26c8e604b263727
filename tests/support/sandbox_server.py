"""Serve an ASGI app (a sandbox) with uvicorn on 127.0.0.1 in a background thread.

Tests that cross a real HTTP boundary use it like this::

    with serve(create_app(size=20)) as server:
        response = httpx.get(f"{server.base_url}/some/path")

The port is chosen by the operating system, so parallel runs never collide.
``serve`` waits a bounded time for uvicorn to start listening and raises
``RuntimeError`` when it does not. On exit it sets uvicorn's ``should_exit``
flag and joins the thread, again within a bound. Uvicorn installs no signal
handlers outside the main thread, so the test runner keeps its own.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0
_POLL_INTERVAL = 0.01


@dataclass(frozen=True)
class RunningServer:
    """Address of a server started by ``serve``."""

    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve(
    app: ASGIApp,
    *,
    startup_timeout: float = STARTUP_TIMEOUT,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> Iterator[RunningServer]:
    """Run ``app`` on 127.0.0.1 and a free port until the ``with`` block ends."""
    listener = _bind_free_port()
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="auto", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name=f"sandbox-{port}", daemon=True
    )
    thread.start()
    try:
        _wait_until_started(server, thread, startup_timeout)
        yield RunningServer(HOST, port)
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout)
        listener.close()
        if thread.is_alive():
            raise RuntimeError(f"the server on {HOST}:{port} did not stop within {shutdown_timeout} s")


def _bind_free_port() -> socket.socket:
    # Naming IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose protocol
    # says TCP, and without it Nagle's algorithm delays every small response by about 40 ms.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(128)
    return listener


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server thread exited before it started listening; see its log output")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start listening within {timeout} s")
        time.sleep(_POLL_INTERVAL)
