"""The store: SQLAlchemy tables and queries, Alembic migrations, and the event outbox."""

from interlink.store.database import Database
from interlink.store.events import append_event

__all__ = ["Database", "append_event"]
