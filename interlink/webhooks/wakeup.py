"""Waking the delivery worker right after a transaction that wrote to the outbox commits.

A listener on the engine marks the pooled connection when a statement
inserts into ``events`` (or when ``request_wakeup`` is called inside the
transaction). The pool's ``checkin`` event fires when the connection goes
back to the pool, which is after the commit, so a woken worker reads the new
rows. A rolled-back transaction may cause a spurious wakeup, which costs one
empty poll. Only writes through this process's engine are seen: another
process's events wait for the worker's polling interval.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from interlink.store import Database
from interlink.store.tables import events

logger = logging.getLogger(__name__)

_MARK = "interlink.webhooks.wake"

Callback = Callable[[], None]


class _CommitHub:
    """The listeners of one engine, shared by every subscriber to it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.callbacks: list[Callback] = []

    def install(self) -> None:
        event.listen(self.engine, "after_execute", self._after_execute)
        event.listen(self.engine.pool, "checkin", self._checkin)

    def remove(self) -> None:
        event.remove(self.engine, "after_execute", self._after_execute)
        event.remove(self.engine.pool, "checkin", self._checkin)

    def _after_execute(
        self,
        connection: Connection,
        statement: Any,
        multiparams: Any,
        params: Any,
        execution_options: Any,
        result: Any,
    ) -> None:
        if isinstance(statement, Insert) and statement.table is events:
            connection.info[_MARK] = True

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        if record is None or not record.info.pop(_MARK, False):
            return
        for callback in list(self.callbacks):
            try:
                callback()
            except Exception:  # a failing subscriber must not break the pool's checkin
                logger.exception("webhook.wakeup.callback_failed")


_hubs: weakref.WeakKeyDictionary[Engine, _CommitHub] = weakref.WeakKeyDictionary()


def subscribe(db: Database, callback: Callback) -> Callable[[], None]:
    """Call ``callback`` after each commit that wrote an event; return a function that unsubscribes.

    The callback runs inside the pool's checkin, on the event loop's thread:
    it must only schedule work (set an ``asyncio.Event``, say).
    """
    engine = db.engine.sync_engine
    hub = _hubs.get(engine)
    if hub is None:
        hub = _hubs[engine] = _CommitHub(engine)
        hub.install()
    hub.callbacks.append(callback)

    def unsubscribe() -> None:
        if callback in hub.callbacks:
            hub.callbacks.remove(callback)
        if not hub.callbacks and _hubs.get(engine) is hub:
            hub.remove()
            del _hubs[engine]

    return unsubscribe


def request_wakeup(connection: AsyncConnection) -> None:
    """Wake the delivery worker after the caller's transaction commits (a redelivery, say)."""
    connection.info[_MARK] = True
