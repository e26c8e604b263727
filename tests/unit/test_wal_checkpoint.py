"""SQLite's write-ahead log is copied into the database file in the background, after commits."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from interlink.store import Database


async def test_commit_starts_background_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    db = Database(f"sqlite:///{path}")
    try:
        async with db.write() as connection:
            await connection.exec_driver_sql("CREATE TABLE numbers (value INTEGER)")
        for value in range(5):
            async with db.write() as connection:
                await connection.exec_driver_sql("INSERT INTO numbers VALUES (?)", (value,))
        assert db.checkpointer is not None
        await db.checkpointer.wait()
        # The writer's own checkpoint is 10,000 pages away, so only the background one copied them.
        copy = tmp_path / "copy.sqlite3"
        shutil.copyfile(path, copy)  # the database file alone, without its log
        with closing(sqlite3.connect(copy)) as copied:
            stored = copied.execute("SELECT count(*) FROM numbers").fetchone()
    finally:
        await db.dispose()
    assert stored == (5,)
