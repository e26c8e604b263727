"""The text of an event in a Matrix room: a short plain-text ``body`` and the same text as HTML.

Each event type has its own sentence, such as "Sync completed: purchase_order
on con_...: 12 created, 3 updated". Values taken from the event are escaped in
the HTML, and free text (an error, a status detail) is cut to
``MAX_TEXT_LENGTH`` characters. An event type without a sentence of its own
is named as it is. These are pure functions, without I/O.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from interlink.store.events import Event

# Free text taken from an event (an error, a status detail) is cut to this many characters,
# so that a message stays short.
MAX_TEXT_LENGTH = 200


@dataclass(frozen=True)
class RoomMessage:
    """The text of one event as posted: plain text and the same text as HTML."""

    body: str
    formatted_body: str


class _MessageBuilder:
    """Builds the plain-text and the HTML version of a message side by side."""

    def __init__(self) -> None:
        self._plain: list[str] = []
        self._html: list[str] = []

    def title(self, text: str) -> _MessageBuilder:
        self._plain.append(text)
        self._html.append(f"<b>{html.escape(text)}</b>")
        return self

    def text(self, text: str) -> _MessageBuilder:
        self._plain.append(text)
        self._html.append(html.escape(text))
        return self

    def code(self, text: str) -> _MessageBuilder:
        self._plain.append(text)
        self._html.append(f"<code>{html.escape(text)}</code>")
        return self

    def message(self) -> RoomMessage:
        return RoomMessage("".join(self._plain), "".join(self._html))


def _value(data: Mapping[str, Any], key: str, default: str = "unknown") -> str:
    value = data.get(key)
    if value is None or value == "":
        return default
    text = str(value)
    return text if len(text) <= MAX_TEXT_LENGTH else text[: MAX_TEXT_LENGTH - 3] + "..."


def _change_counts(counts: Any) -> str:
    """Describe created, updated and deleted counts, such as "12 created, 3 updated"."""
    if not isinstance(counts, Mapping):
        return "no changes"
    parts = [
        f"{counts[name]} {name}"
        for name in ("created", "updated", "deleted")
        if isinstance(counts.get(name), int) and counts[name] > 0
    ]
    return ", ".join(parts) or "no changes"


def _connection_of(event: Event) -> str:
    return event.connection_id or _value(event.data, "connection_id")


def _sync_heading(event: Event, builder: _MessageBuilder, title: str) -> None:
    """Write "<title>: <entity> on <connection>", the start of every sync event's message."""
    builder.title(title).text(": ").code(_value(event.data, "entity"))
    builder.text(" on ").code(_connection_of(event))


def _sync_started(event: Event, builder: _MessageBuilder) -> None:
    _sync_heading(event, builder, "Sync started")
    builder.text(f" ({_value(event.data, 'mode')}, {_value(event.data, 'trigger')})")


def _sync_completed(event: Event, builder: _MessageBuilder) -> None:
    _sync_heading(event, builder, "Sync completed")
    builder.text(f": {_change_counts(event.data.get('counts'))}")


def _sync_failed(event: Event, builder: _MessageBuilder) -> None:
    _sync_heading(event, builder, "Sync failed")
    builder.text(f": {_value(event.data, 'error')} ({_value(event.data, 'error_code')})")


def _records_changed(event: Event, builder: _MessageBuilder) -> None:
    builder.title("Records changed").text(" on ").code(_connection_of(event))
    entities = event.data.get("entities")
    if not isinstance(entities, dict):
        return
    separator = ": "
    for entity, change in sorted(entities.items()):
        counts = change.get("counts") if isinstance(change, Mapping) else None
        builder.text(separator).code(str(entity)).text(f" {_change_counts(counts)}")
        separator = "; "


def _connection_created(event: Event, builder: _MessageBuilder) -> None:
    data = event.data
    builder.title("Connection created").text(": ").code(_connection_of(event))
    builder.text(f" ({_value(data, 'integration')}) for end user ").code(_value(data, "end_user_id"))


def _connection_status_changed(event: Event, builder: _MessageBuilder) -> None:
    data = event.data
    builder.title("Connection status changed").text(": ").code(_connection_of(event))
    builder.text(" is now ").code(_value(data, "status"))
    if data.get("status_reason"):
        builder.text(f" ({_value(data, 'status_reason')})")
    if data.get("detail"):
        builder.text(f": {_value(data, 'detail')}")


def _reauthorization_required(event: Event, builder: _MessageBuilder) -> None:
    builder.title("Connection").text(" ").code(_connection_of(event))
    builder.text(f" needs reauthorization ({_value(event.data, 'status_reason')})")


def _connection_deleted(event: Event, builder: _MessageBuilder) -> None:
    builder.title("Connection deleted").text(": ").code(_connection_of(event))
    builder.text(f" ({_value(event.data, 'integration')})")


def _endpoint_disabled(event: Event, builder: _MessageBuilder) -> None:
    data = event.data
    builder.title("Webhook endpoint disabled").text(": ").code(_value(data, "endpoint_id"))
    builder.text(f" ({_value(data, 'reason')}): {_value(data, 'detail')}")


_FORMATTERS: dict[str, Callable[[Event, _MessageBuilder], None]] = {
    "sync.started": _sync_started,
    "sync.completed": _sync_completed,
    "sync.failed": _sync_failed,
    "records.changed": _records_changed,
    "connection.created": _connection_created,
    "connection.status_changed": _connection_status_changed,
    "connection.reauthorization_required": _reauthorization_required,
    "connection.deleted": _connection_deleted,
    "webhook_endpoint.disabled": _endpoint_disabled,
}


def format_message(event: Event) -> RoomMessage:
    """Return the text that describes the event to a person in the room."""
    builder = _MessageBuilder()
    formatter = _FORMATTERS.get(event.type)
    if formatter is not None:
        formatter(event, builder)
    else:
        builder.title("Event").text(" ").code(event.type)
        if event.connection_id:
            builder.text(" on ").code(event.connection_id)
    return builder.message()


def message_content(message: RoomMessage) -> dict[str, str]:
    """Return the ``m.room.message`` content, of type ``m.notice``.

    The Client-Server API reserves notices for automated senders: clients show
    them apart, and bots must never respond to them automatically.
    """
    return {
        "msgtype": "m.notice",
        "body": message.body,
        "format": "org.matrix.custom.html",
        "formatted_body": message.formatted_body,
    }
