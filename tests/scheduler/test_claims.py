"""Claiming due schedules from several processes at once: every due pair is claimed and queued once."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.sync.scheduler import Scheduler
from tests.scheduler.conftest import ENTITIES, T0, add_connection, runs_of, schedules_of

PROCESSES = 3
CONNECTIONS = 40
STARTUP_TIMEOUT = 60.0
RUN_TIMEOUT = 60.0
REPO = Path(__file__).resolve().parents[2]


async def test_processes_claim_each_due_schedule_once(
    runtime: Runtime, settings: Settings, scheduler: Scheduler
) -> None:
    connection_ids = [await add_connection(runtime) for _ in range(CONNECTIONS)]
    await scheduler.create_missing_schedules()  # every schedule is due at T0

    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.scheduler.claim_worker",
            settings.database_url,
            T0.isoformat(),
            "7",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), STARTUP_TIMEOUT)
            assert line.strip() == b"ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        outputs = [await asyncio.wait_for(worker.communicate(), RUN_TIMEOUT) for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()

    assert [worker.returncode for worker in workers] == [0] * PROCESSES
    results = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    claims = [tuple(pair) for result in results for pair in result["claimed"]]
    expected = {(connection_id, entity) for connection_id in connection_ids for entity in ENTITIES}
    assert len(claims) == len(expected)  # no pair claimed twice
    assert set(claims) == expected
    assert sum(result["queued"] for result in results) == len(expected)

    for connection_id in connection_ids:
        runs = await runs_of(runtime, connection_id)
        assert sorted(run.entity for run in runs) == sorted(ENTITIES)
        for schedule in (await schedules_of(runtime, connection_id)).values():
            assert schedule.next_incremental_at > T0
