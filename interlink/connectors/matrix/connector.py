"""The Matrix connector: conversation and user readers, the message writer, and the connector itself.

Each entity's reader makes its own ``/sync`` call with a filter that lets
through only what that entity needs, and keeps its own ``next_batch`` as
its cursor (see ``docs/decisions/matrix-sync.md``). Messages are read in
``timeline.py``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from interlink.connectors.base import (
    ConnectorContext,
    EntityReader,
    EntityWriter,
    Page,
    ReadWindow,
    SourceRecord,
)
from interlink.connectors.errors import PermissionDenied, SourceDataError, SourceRejected
from interlink.connectors.matrix.client import MatrixClient, NotFound
from interlink.connectors.matrix.mapping import (
    CONVERSATION_STATE_TYPES,
    MEMBER_TYPE,
    current_state,
    direct_room_ids,
    map_conversation,
    map_message,
    map_users,
)
from interlink.connectors.matrix.timeline import MessageReader
from interlink.model import Ref

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
_NOTHING: dict[str, Any] = {"types": []}

CONVERSATION_FILTER: dict[str, Any] = {
    "presence": _NOTHING,
    "account_data": {"types": ["m.direct"]},
    "room": {
        "state": {"types": [*CONVERSATION_STATE_TYPES, MEMBER_TYPE], "lazy_load_members": False},
        "timeline": {"types": [*CONVERSATION_STATE_TYPES, MEMBER_TYPE], "limit": 50},
        "ephemeral": _NOTHING,
        "account_data": _NOTHING,
    },
}
USER_FILTER: dict[str, Any] = {
    "presence": _NOTHING,
    "account_data": _NOTHING,
    "room": {
        "state": {"types": [MEMBER_TYPE], "lazy_load_members": False},
        "timeline": {"types": [MEMBER_TYPE], "limit": 100},
        "ephemeral": _NOTHING,
        "account_data": _NOTHING,
    },
}


def _events(section: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    events = section.get(name, {}).get("events", [])
    return [event for event in events if isinstance(event, dict)]


def _pages(records: Sequence[SourceRecord], cursor: str | None, next_batch: str, *, full: bool) -> list[Page]:
    """Split records into pages; only the last carries ``next_batch``, the others the old cursor."""
    pages = [
        Page(records=records[start : start + PAGE_SIZE], cursor=cursor)
        for start in range(0, len(records), PAGE_SIZE)
    ]
    last = pages.pop().records if pages else []
    return [*pages, Page(records=last, cursor=next_batch, complete=full)]


def _next_batch(response: Mapping[str, Any]) -> str:
    value = response.get("next_batch")
    if not isinstance(value, str) or not value:
        raise SourceDataError("/sync returned no next_batch")
    return value


class ConversationReader:
    """Reads joined rooms as conversations; rooms the account left come back deleted."""

    def __init__(self, client: MatrixClient, connection_id: str) -> None:
        self._client = client
        self._connection_id = connection_id

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        response = await self._client.sync(cursor, CONVERSATION_FILTER)
        next_batch = _next_batch(response)
        rooms = response.get("rooms", {})
        joined: dict[str, Any] = rooms.get("join", {})
        left: dict[str, Any] = rooms.get("leave", {}) if cursor is not None else {}
        direct_event = next(
            (event for event in _events(response, "account_data") if event.get("type") == "m.direct"), None
        )

        records: list[SourceRecord] = []
        if cursor is None:
            direct = direct_room_ids((direct_event or {}).get("content", {}))
            for room_id in sorted(joined):
                events = _events(joined[room_id], "state") + _events(joined[room_id], "timeline")
                records.append(self._map(room_id, current_state(events), direct))
        else:
            changed = set(joined)
            if direct_event is not None:
                # Which rooms left m.direct is unknown, so every joined room is read again.
                direct = direct_room_ids(direct_event.get("content", {}))
                changed |= set(await self._client.joined_rooms())
            elif changed or left:
                direct = direct_room_ids(await self._client.account_data("m.direct"))
            for room_id in sorted(changed):
                state = current_state(await self._client.room_state(room_id))
                records.append(self._map(room_id, state, direct))
            for room_id in sorted(left):
                records.append(await self._map_left(room_id, left[room_id]))
        logger.info("matrix.conversations.read since=%s rooms=%d", cursor is not None, len(records))
        for page in _pages(records, cursor, next_batch, full=window.mode == "full"):
            yield page

    def _map(self, room_id: str, state: Mapping[tuple[str, str], Any], direct: set[str]) -> SourceRecord:
        return map_conversation(self._connection_id, room_id, state, direct=room_id in direct)

    async def _map_left(self, room_id: str, section: Mapping[str, Any]) -> SourceRecord:
        try:
            state = current_state(await self._client.room_state(room_id))
        except (NotFound, PermissionDenied):
            state = current_state(_events(section, "state") + _events(section, "timeline"))
        return map_conversation(self._connection_id, room_id, state, direct=False, deleted=True)


class UserReader:
    """Reads the joined members of every joined room as users."""

    def __init__(self, client: MatrixClient, connection_id: str) -> None:
        self._client = client
        self._connection_id = connection_id

    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        # A limited timeline still brings the state delta over its gap, so
        # member changes need no back-fill.
        response = await self._client.sync(cursor, USER_FILTER)
        next_batch = _next_batch(response)
        joined: dict[str, Any] = response.get("rooms", {}).get("join", {})
        events = [
            event
            for room_id in sorted(joined)
            for event in _events(joined[room_id], "state") + _events(joined[room_id], "timeline")
        ]
        records = map_users(self._connection_id, events)
        logger.info("matrix.users.read since=%s users=%d", cursor is not None, len(records))
        for page in _pages(records, cursor, next_batch, full=window.mode == "full"):
            yield page


class MessageInput(BaseModel):
    """A message to send, as the write service passes it: references already resolved."""

    model_config = ConfigDict(extra="forbid")

    conversation: Ref
    body: str = Field(min_length=1)
    body_html: str | None = None
    reply_to: Ref | None = None


def transaction_id(connection_id: str, idempotency_key: str | None) -> str:
    """Derive the Matrix transaction id from the idempotency key, so a retried write reuses it."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    digest = hashlib.sha256(f"{connection_id}\x1f{idempotency_key}".encode()).hexdigest()
    return f"interlink-{digest[:40]}"


class MessageWriter:
    """Sends ``m.room.message`` events."""

    def __init__(self, client: MatrixClient, connection_id: str) -> None:
        self._client = client
        self._connection_id = connection_id

    async def create(self, data: Mapping[str, Any], *, idempotency_key: str | None) -> SourceRecord:
        """Send a text message and return it as the next sync will read it.

        Raises ``pydantic.ValidationError`` naming the field when ``data`` is invalid.
        """
        message = MessageInput.model_validate(data)
        content: dict[str, Any] = {"msgtype": "m.text", "body": message.body}
        if message.body_html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = message.body_html
        if message.reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": message.reply_to.remote_id}}

        room_id = message.conversation.remote_id
        txn_id = transaction_id(self._connection_id, idempotency_key)
        event_id = await self._client.send_event(room_id, "m.room.message", txn_id, content)
        logger.info("matrix.message.sent room_id=%s event_id=%s", room_id, event_id)
        event = await self._client.event(room_id, event_id)
        return map_message(self._connection_id, room_id, event)

    async def update(
        self, remote_id: str, data: Mapping[str, Any], *, idempotency_key: str | None
    ) -> SourceRecord:
        raise SourceRejected(f"editing Matrix message {remote_id} is not supported; send a new message")


class MatrixConnector:
    """The Matrix connector bound to one connection."""

    def __init__(self, context: ConnectorContext) -> None:
        self._connection_id = context.connection_id
        self.client = MatrixClient(context.http, context.credentials, context.save_credentials)

    async def check(self) -> None:
        await self.client.user_id()

    def reader(self, entity: str) -> EntityReader:
        if entity == "conversation":
            return ConversationReader(self.client, self._connection_id)
        if entity == "user":
            return UserReader(self.client, self._connection_id)
        if entity == "message":
            return MessageReader(self.client, self._connection_id, page_size=PAGE_SIZE)
        raise SourceRejected(
            f"the Matrix connector does not read {entity!r}; it reads conversation, user and message"
        )

    def writer(self, entity: str) -> EntityWriter | None:
        return MessageWriter(self.client, self._connection_id) if entity == "message" else None
