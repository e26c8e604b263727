"""Group commit: concurrent writes share transactions, and a failing write fails only its caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.runtime import Runtime
from interlink.store.events import append_event, list_events
from interlink.webhooks.group_commit import GroupCommit


def writer(number: int, *, fail: bool = False) -> Callable[[AsyncConnection], Awaitable[int]]:
    async def write(connection: AsyncConnection) -> int:
        await append_event(connection, "sync.completed", {"number": number})
        if fail:
            raise ValueError(f"write {number} failed on purpose")
        return number

    return write


async def test_results_reach_their_callers(runtime: Runtime) -> None:
    commits = GroupCommit[int](runtime.db)
    results = await asyncio.gather(*(commits.run(writer(number)) for number in range(20)))
    assert results == list(range(20))


async def test_concurrent_writes_share_transactions(runtime: Runtime) -> None:
    begins: list[object] = []
    engine = runtime.db.engine.sync_engine

    def listener(connection: object) -> None:
        begins.append(connection)

    event.listen(engine, "begin", listener)
    try:
        commits = GroupCommit[int](runtime.db)
        await asyncio.gather(*(commits.run(writer(number)) for number in range(20)))
    finally:
        event.remove(engine, "begin", listener)

    assert 1 <= len(begins) < 20
    async with runtime.db.read() as db:
        assert len(await list_events(db, after=None, limit=100)) == 20


async def test_failing_write_fails_only_its_caller(runtime: Runtime) -> None:
    commits = GroupCommit[int](runtime.db)
    outcomes = await asyncio.gather(
        *(commits.run(writer(number, fail=number == 3)) for number in range(6)), return_exceptions=True
    )

    assert isinstance(outcomes[3], ValueError)
    assert [outcome for index, outcome in enumerate(outcomes) if index != 3] == [0, 1, 2, 4, 5]
    async with runtime.db.read() as db:
        stored = sorted(row.data["number"] for row in await list_events(db, after=None, limit=100))
    assert stored == [0, 1, 2, 4, 5]


async def test_wait_closed_without_writes(runtime: Runtime) -> None:
    await GroupCommit[int](runtime.db).wait_closed()


@pytest.mark.parametrize("count", [1, 250])
async def test_batches_of_any_size(runtime: Runtime, count: int) -> None:
    commits = GroupCommit[int](runtime.db, max_batch=100)
    assert len(await asyncio.gather(*(commits.run(writer(number)) for number in range(count)))) == count
