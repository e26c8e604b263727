"""Execute one queued sync run in a process of its own, for the refresh tests.

Usage: ``python -m tests.connect.refresh_worker CONFIG`` where CONFIG is JSON
with ``database_url``, ``secret_key``, ``run_id``, ``ready_path``,
``go_path`` and ``coordinated``. The worker touches ``ready_path`` when it
is set up, waits (at most ``GO_TIMEOUT`` seconds) until ``go_path`` exists,
so that two workers start together, executes the run and prints its status
as JSON. With ``coordinated`` it refreshes tokens under the database lease;
without, under the in-process default only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from interlink.connectors import dynamics_bc
from interlink.connectors.oauth import use_refresh_coordinator
from interlink.crypto import CredentialBox
from interlink.store import Database
from interlink.store.oauth import DatabaseRefreshCoordinator
from interlink.sync.engine import SyncEngine
from tests.connect.tuning import FAST_TUNING

GO_TIMEOUT = 60.0
POLL_INTERVAL = 0.005


def wait_for_go(config: dict[str, object]) -> None:
    Path(str(config["ready_path"])).touch()
    go = Path(str(config["go_path"]))
    deadline = time.monotonic() + GO_TIMEOUT
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go} did not appear within {GO_TIMEOUT} s")
        time.sleep(POLL_INTERVAL)


async def execute(config: dict[str, object]) -> dict[str, object]:
    dynamics_bc.use_tuning(FAST_TUNING)
    db = Database(str(config["database_url"]))
    box = CredentialBox(str(config["secret_key"]))
    if config["coordinated"]:
        use_refresh_coordinator(DatabaseRefreshCoordinator(db, box, poll_interval=0.05))
    engine = SyncEngine(db, box)
    try:
        run = await engine.execute_run(str(config["run_id"]))
    finally:
        await db.dispose()
    assert run is not None
    return {"run_id": run.id, "status": run.status, "error_code": run.error_code, "error": run.error}


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    wait_for_go(arguments)
    print(json.dumps(asyncio.run(execute(arguments))))
