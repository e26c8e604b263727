"""Applying Alembic migrations to the store."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from interlink.store.database import Database

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works: it only has to be the same in every Interlink process.
_ADVISORY_LOCK_KEY = 0x1D7E_211C


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "heads") -> None:
    """Bring the schema to ``revision``; on PostgreSQL under an advisory lock so processes take turns."""

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        command.upgrade(alembic_config(connection), revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(run)
    logger.info("store.migrated revision=%s", revision)
