"""A webhook receiver for tests: an HTTPS server on 127.0.0.1 that records every request.

Its certificate comes from a test CA (``trustme``). A test scripts the
responses (status and headers, 200 when nothing is scripted), can hold
requests open until released, and can take the server down and up again on
the same port. While down, the port stays bound without listening, so
connections are refused at once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import uvicorn

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0
# Requests held open are released after this long even if the test never releases them.
MAX_HOLD_SECONDS = 30.0


@dataclass(frozen=True)
class ReceivedRequest:
    headers: dict[str, str]
    body: bytes
    path: str
    received_at: float


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """The recording HTTPS server, started and stopped with ``start`` and ``stop``."""

    def __init__(self, certificate: trustme.LeafCert, directory: Path) -> None:
        self._key_path = directory / "receiver-key.pem"
        self._cert_path = directory / "receiver-cert.pem"
        certificate.private_key_pem.write_to_path(str(self._key_path))
        certificate.cert_chain_pems[0].write_to_path(str(self._cert_path))
        for extra in certificate.cert_chain_pems[1:]:
            extra.write_to_path(str(self._cert_path), append=True)
        self.requests: list[ReceivedRequest] = []
        self.answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._hold = threading.Event()
        self._hold.set()
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def url(self, path: str = "/hook", host: str = HOST) -> str:
        return f"https://{host}:{self.port}{path}"

    def bind(self) -> None:
        """Reserve the port without listening: connections to it are refused until ``start``."""
        # With IPPROTO_TCP given, asyncio sets TCP_NODELAY on accepted connections. Without it
        # the response body waits for the client's delayed ACK, about 40 ms on Linux.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        self.port = listener.getsockname()[1]
        self._socket = listener

    def start(self) -> None:
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            access_log=False,
            ssl_keyfile=str(self._key_path),
            ssl_certfile=str(self._cert_path),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name=f"receiver-{self.port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(f"the receiver on {HOST}:{self.port} did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving; the port is bound again (not listening) so a later ``start`` reuses it."""
        self._hold.set()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(SHUTDOWN_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError(f"the receiver on {HOST}:{self.port} did not stop")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self.bind()

    def close(self) -> None:
        self.stop()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def hold_requests(self) -> None:
        """Keep every following request open, without a response, until ``release``."""
        self._hold.clear()

    def release(self) -> None:
        self._hold.set()

    def answer(self, status: int, headers: dict[str, str] | None = None, *, times: int = 1) -> None:
        """Script the next ``times`` responses."""
        for _ in range(times):
            self.answers.append(Answer(status, headers or {}))

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        with self._lock:
            self.requests.append(ReceivedRequest(headers, body, scope["path"], time.time()))
            answer = self.answers.popleft() if self.answers else Answer()
        if not self._hold.is_set():
            await asyncio.to_thread(self._hold.wait, MAX_HOLD_SECONDS)
        raw_headers = [(b"content-type", b"text/plain")]
        raw_headers += [(name.encode(), value.encode()) for name, value in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": b"ok"})
