"""``interlink demo`` run twice as a user would: linked, synced, served, stopped, started again."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

READY = "press Ctrl+C to stop"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_demo_once(directory: Path, log: Path) -> tuple[str, str]:
    """Start the demo, wait until it serves, call the API, stop it; return its output and the API response."""
    port = free_port()
    command = [sys.executable, "-m", "interlink.cli", "demo", "--no-tryton", "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--directory", str(directory)], stdout=output, stderr=subprocess.STDOUT, env=os.environ
        )
        try:
            deadline = time.monotonic() + 180
            while READY not in log.read_text():
                assert process.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the demo did not start serving within 180 s"
                time.sleep(0.2)
            text = log.read_text()
            key = re.search(r"ilk_[A-Za-z0-9_\-]+", text)
            assert key is not None, text
            answer = httpx.get(
                f"http://127.0.0.1:{port}/v1/purchase-orders",
                params={"page_size": 1000},
                headers={"Authorization": f"Bearer {key.group(0)}"},
            )
            assert answer.status_code == 200, answer.text
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    return log.read_text(), answer.text


def test_demo_runs_twice(tmp_path: Path) -> None:
    directory = tmp_path / "demo"

    first, first_orders = run_demo_once(directory, tmp_path / "first.log")
    second, second_orders = run_demo_once(directory, tmp_path / "second.log")

    assert "returns one shape for" in first
    assert "sync.run.failed" not in first
    assert "sync.run.failed" not in second  # the reused connections reach the systems' new ports
    assert "linked" in first
    assert "linked" not in second
    for integration in ("dynamics_bc", "netsuite", "sap_s4hana"):  # Maximo has no purchase orders
        assert f'"integration":"{integration}"' in first_orders
        assert f'"integration":"{integration}"' in second_orders
