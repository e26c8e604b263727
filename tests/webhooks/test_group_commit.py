"""Group commit: concurrent writes share transactions, and a failing item fails only its caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.runtime import Runtime
from interlink.store.events import append_event, list_events
from interlink.webhooks.group_commit import GroupCommit

FAILING = -1


async def write_numbers(connection: AsyncConnection, numbers: Sequence[int]) -> list[int]:
    """Store each number as an event; a batch containing ``FAILING`` fails after writing."""
    for number in numbers:
        await append_event(connection, "sync.completed", {"number": number})
    if FAILING in numbers:
        raise ValueError("the batch contains the failing item")
    return [number * 10 for number in numbers]


async def stored_numbers(runtime: Runtime) -> list[int]:
    async with runtime.db.read() as db:
        return sorted(row.data["number"] for row in await list_events(db, after=None, limit=1000))


async def test_results_reach_their_callers(runtime: Runtime) -> None:
    commits = GroupCommit(runtime.db, write_numbers)
    results = await asyncio.gather(*(commits.submit(number) for number in range(20)))
    assert results == [number * 10 for number in range(20)]


async def test_concurrent_items_share_transactions(runtime: Runtime) -> None:
    begins: list[object] = []
    engine = runtime.db.engine.sync_engine

    def listener(connection: object) -> None:
        begins.append(connection)

    event.listen(engine, "begin", listener)
    try:
        commits = GroupCommit(runtime.db, write_numbers)
        await asyncio.gather(*(commits.submit(number) for number in range(20)))
    finally:
        event.remove(engine, "begin", listener)

    assert 1 <= len(begins) < 20
    assert await stored_numbers(runtime) == list(range(20))


async def test_failing_item_fails_only_its_caller(runtime: Runtime) -> None:
    commits = GroupCommit(runtime.db, write_numbers)
    items = [0, 1, FAILING, 3, 4]
    outcomes = await asyncio.gather(*(commits.submit(item) for item in items), return_exceptions=True)

    assert isinstance(outcomes[2], ValueError)
    assert [outcomes[index] for index in (0, 1, 3, 4)] == [0, 10, 30, 40]
    assert await stored_numbers(runtime) == [0, 1, 3, 4]


async def test_wait_closed_without_items(runtime: Runtime) -> None:
    await GroupCommit(runtime.db, write_numbers).wait_closed()


@pytest.mark.parametrize("count", [1, 250])
async def test_batches_of_any_size(runtime: Runtime, count: int) -> None:
    commits = GroupCommit(runtime.db, write_numbers, max_batch=100)
    results = await asyncio.gather(*(commits.submit(number) for number in range(count)))
    assert len(results) == count
    assert await stored_numbers(runtime) == list(range(count))
