"""The commit-ordered change sequence behind API cursors."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.store.tables import change_counter


async def next_change_seq(connection: AsyncConnection) -> int:
    """Take the next change number inside the caller's writing transaction.

    The UPDATE locks the counter row until the transaction ends, so two
    transactions can never commit their numbers out of order.
    """
    result = await connection.execute(
        update(change_counter)
        .where(change_counter.c.id == 1)
        .values(value=change_counter.c.value + 1)
        .returning(change_counter.c.value)
    )
    value = result.scalar_one_or_none()
    if value is None:
        await connection.execute(insert(change_counter).values(id=1, value=1))
        return 1
    return int(value)


async def current_change_seq(connection: AsyncConnection) -> int:
    value = (await connection.execute(select(change_counter.c.value))).scalar_one_or_none()
    return int(value or 0)
