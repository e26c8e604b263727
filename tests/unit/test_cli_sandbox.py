"""``interlink sandbox NAME``: one sandbox served alone, as a user would start it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_sandbox_serves_and_prints_credentials() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "interlink.cli", "sandbox", "netsuite", "--port", str(port), "--size", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("}"):
                break
        printed = json.loads("".join(lines))
        assert printed["integration"] == "netsuite"
        assert printed["credentials"]["base_url"] == f"http://127.0.0.1:{port}"

        status = None
        for _ in range(100):
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/services/rest/record/v1/vendor").status_code
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 401  # up, and it checks request signatures
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_unknown_sandbox_is_an_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "interlink.cli", "sandbox", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "unknown sandbox 'nope'" in result.stderr
