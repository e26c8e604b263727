"""Pure functions from Matrix events to unified conversations, users and messages.

Remote ids: a conversation is its room id, a user is their user id (MXID),
a message is the event id of its original ``m.room.message`` or
``m.room.encrypted`` event. Edits and redactions are not records of their
own: they change the message they point at.

Raw records are stripped of what changes without the record changing, so
content hashes stay stable. In ``unsigned`` only the applied replacement
(``m.relations.m.replace``) and the redaction (``redacted_because``) are
kept. Dropped are ``age``, ``transaction_id``, ``membership``,
``redacted_by`` and the thread summary, which changes with every reply in
the thread. Every raw
event carries its ``room_id``, which ``/sync`` leaves out and
``/rooms/{roomId}/event/{eventId}`` includes, so both give the same record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from interlink.connectors.base import SourceRecord
from interlink.model import Conversation, Message, User, reference

MESSAGE_TYPES = ("m.room.message", "m.room.encrypted")
REDACTION_TYPE = "m.room.redaction"
MEMBER_TYPE = "m.room.member"
# State that describes a conversation; member events count its members.
CONVERSATION_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.encryption",
)

MessageKind = Literal["text", "notice", "emote", "file", "image", "other"]
_KINDS: dict[str, MessageKind] = {
    "m.text": "text",
    "m.notice": "notice",
    "m.emote": "emote",
    "m.image": "image",
    "m.file": "file",
    "m.audio": "file",
    "m.video": "file",
}
_EVENT_KEYS = ("event_id", "type", "sender", "origin_server_ts", "content", "state_key", "redacts")
_REPLY_HTML = re.compile(r"^<mx-reply>.*?</mx-reply>", re.DOTALL)


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """Return the event's ``origin_server_ts`` (Unix milliseconds) as a UTC time."""
    value = event.get("origin_server_ts")
    if not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def content_of(event: Mapping[str, Any]) -> dict[str, Any]:
    content = event.get("content")
    return content if isinstance(content, dict) else {}


def relation_of(event: Mapping[str, Any]) -> dict[str, Any]:
    relation = content_of(event).get("m.relates_to")
    return relation if isinstance(relation, dict) else {}


def replaced_event_id(event: Mapping[str, Any]) -> str | None:
    """Return the id of the event this one edits (``rel_type`` ``m.replace``), or ``None``."""
    relation = relation_of(event)
    target = relation.get("event_id")
    return target if relation.get("rel_type") == "m.replace" and isinstance(target, str) else None


def redacted_event_id(event: Mapping[str, Any]) -> str | None:
    """Return the id a redaction removes: ``content.redacts`` from room version 11, else ``redacts``."""
    target = content_of(event).get("redacts", event.get("redacts"))
    return target if isinstance(target, str) else None


def redaction_of(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the redaction event a homeserver attached to a redacted event, if any."""
    unsigned = event.get("unsigned")
    because = unsigned.get("redacted_because") if isinstance(unsigned, dict) else None
    return because if isinstance(because, dict) else None


def bundled_replacement(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the latest edit the homeserver bundled under ``unsigned.m.relations.m.replace``."""
    unsigned = event.get("unsigned")
    relations = unsigned.get("m.relations") if isinstance(unsigned, dict) else None
    replacement = relations.get("m.replace") if isinstance(relations, dict) else None
    return replacement if isinstance(replacement, dict) else None


def is_valid_replacement(original: Mapping[str, Any], replacement: Mapping[str, Any]) -> bool:
    """Apply the rules of event replacements: same sender, same type, and not an edit of an edit."""
    return (
        replacement.get("sender") == original.get("sender")
        and replacement.get("type") == original.get("type")
        and replaced_event_id(original) is None
    )


def latest_event(*events: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Return the newest of the events given, by ``origin_server_ts`` then event id."""
    present = [event for event in events if event is not None]
    if not present:
        return None
    return max(present, key=lambda event: (event.get("origin_server_ts") or 0, event.get("event_id") or ""))


def normalize_event(event: Mapping[str, Any], room_id: str) -> dict[str, Any]:
    """Keep an event's protocol fields and its stable ``unsigned`` parts, with its room id."""
    normalized: dict[str, Any] = {key: event[key] for key in _EVENT_KEYS if key in event}
    normalized["room_id"] = room_id
    return normalized


def _raw_message(
    event: Mapping[str, Any],
    room_id: str,
    replacement: Mapping[str, Any] | None,
    redaction: Mapping[str, Any] | None,
) -> dict[str, Any]:
    raw = normalize_event(event, room_id)
    unsigned: dict[str, Any] = {}
    if replacement is not None:
        unsigned["m.relations"] = {"m.replace": normalize_event(replacement, room_id)}
    if redaction is not None:
        unsigned["redacted_because"] = normalize_event(redaction, room_id)
    if unsigned:
        raw["unsigned"] = unsigned
    return raw


def strip_reply_fallback(body: str | None, html: str | None) -> tuple[str | None, str | None]:
    """Remove the quoted fallback that older clients put before a reply's own text."""
    if html is not None:
        html = _REPLY_HTML.sub("", html, count=1)
    if body is not None and body.startswith("> "):
        lines = body.split("\n")
        quoted = 0
        while quoted < len(lines) and lines[quoted].startswith(">"):
            quoted += 1
        if quoted < len(lines) and lines[quoted] == "":
            body = "\n".join(lines[quoted + 1 :])
    return body, html


def map_message(
    connection_id: str,
    room_id: str,
    event: Mapping[str, Any],
    *,
    replacement: Mapping[str, Any] | None = None,
    redaction: Mapping[str, Any] | None = None,
) -> SourceRecord:
    """Map an ``m.room.message`` or ``m.room.encrypted`` event, with its latest edit and its redaction.

    An encrypted event keeps no body (``body`` is ``None``, ``kind`` is
    ``"other"``), because Interlink does not decrypt. A redacted event is
    marked deleted and keeps no body either.
    """
    redaction = redaction or redaction_of(event)
    if replacement is not None and not is_valid_replacement(event, replacement):
        replacement = None
    deleted = redaction is not None
    encrypted = event.get("type") == "m.room.encrypted"

    displayed = content_of(event)
    if replacement is not None and not deleted:
        new_content = content_of(replacement).get("m.new_content")
        if isinstance(new_content, dict):
            displayed = new_content

    body: str | None = None
    html: str | None = None
    kind: MessageKind | None = None
    if deleted:
        kind = None
    elif encrypted:
        kind = "other"
    else:
        body = displayed.get("body") if isinstance(displayed.get("body"), str) else None
        if displayed.get("format") == "org.matrix.custom.html" and isinstance(
            displayed.get("formatted_body"), str
        ):
            html = displayed["formatted_body"]
        kind = _KINDS.get(str(displayed.get("msgtype")), "other")

    # Relations come from the original's content: a replacement cannot change them.
    relation = relation_of(event)
    thread_root = relation.get("event_id") if relation.get("rel_type") == "m.thread" else None
    in_reply_to = relation.get("m.in_reply_to")
    reply_to = in_reply_to.get("event_id") if isinstance(in_reply_to, dict) else None
    if thread_root is not None and relation.get("is_falling_back") is True:
        reply_to = None  # only a fallback for clients without threads
    if reply_to is not None and not encrypted:
        body, html = strip_reply_fallback(body, html)

    sent_at = event_time(event)
    edited_at = event_time(replacement) if replacement is not None else None
    changes = [moment for moment in (sent_at, edited_at, event_time(redaction or {})) if moment is not None]
    sender = event.get("sender")
    data = Message(
        conversation=reference(connection_id, "conversation", room_id),
        sender=reference(connection_id, "user", sender) if isinstance(sender, str) else None,
        body=body,
        body_html=html,
        kind=kind,
        sent_at=sent_at,
        edited_at=edited_at,
        reply_to=reference(connection_id, "message", reply_to) if isinstance(reply_to, str) else None,
        thread_root=(
            reference(connection_id, "message", thread_root) if isinstance(thread_root, str) else None
        ),
    )
    return SourceRecord(
        remote_id=str(event["event_id"]),
        data=data,
        raw=_raw_message(event, room_id, replacement, redaction),
        remote_created_at=sent_at,
        remote_updated_at=max(changes) if changes else None,
        deleted=deleted,
    )


def current_state(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """Fold state events, oldest first, into the current state keyed by (type, state key)."""
    state: dict[tuple[str, str], Mapping[str, Any]] = {}
    for event in events:
        state_key = event.get("state_key")
        if isinstance(state_key, str) and isinstance(event.get("type"), str):
            state[(event["type"], state_key)] = event
    return state


def joined_members(state: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        event
        for (event_type, _), event in state.items()
        if event_type == MEMBER_TYPE and content_of(event).get("membership") == "join"
    ]


def map_conversation(
    connection_id: str,
    room_id: str,
    state: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    direct: bool,
    deleted: bool = False,
) -> SourceRecord:
    """Map a room's current state to a conversation.

    ``direct`` comes from the user's ``m.direct`` account data. A member
    event flagged ``is_direct``, which the inviter of a direct chat sets,
    also makes the room direct.
    """

    def text(event_type: str, key: str) -> str | None:
        value = content_of(state.get((event_type, ""), {})).get(key)
        return value if isinstance(value, str) and value else None

    members = joined_members(state)
    direct = direct or any(
        content_of(event).get("is_direct") is True
        for (event_type, _), event in state.items()
        if event_type == MEMBER_TYPE
    )
    data = Conversation(
        name=text("m.room.name", "name") or text("m.room.canonical_alias", "alias"),
        topic=text("m.room.topic", "topic"),
        type="direct" if direct else "room",
        member_count=len(members),
        encrypted=("m.room.encryption", "") in state,
    )
    raw = {
        "room_id": room_id,
        "state": {
            event_type: content_of(state[(event_type, "")])
            for event_type in CONVERSATION_STATE_TYPES
            if (event_type, "") in state
        },
        "joined_member_count": len(members),
        "direct": direct,
    }
    return SourceRecord(
        remote_id=room_id,
        data=data,
        raw=raw,
        remote_created_at=event_time(state.get(("m.room.create", ""), {})),
        deleted=deleted,
    )


def direct_room_ids(m_direct: Mapping[str, Any]) -> set[str]:
    """Return the room ids listed in ``m.direct`` account data (user id to room ids)."""
    rooms: set[str] = set()
    for room_ids in m_direct.values():
        if isinstance(room_ids, list):
            rooms.update(room_id for room_id in room_ids if isinstance(room_id, str))
    return rooms


def map_users(connection_id: str, member_events: Iterable[Mapping[str, Any]]) -> list[SourceRecord]:
    """Map room members to users: one record per joined user, from their newest member event.

    A user in several rooms may carry a different display name in each; the
    newest member event wins, as it does when someone renames themselves.
    """
    newest: dict[str, Mapping[str, Any]] = {}
    for event in member_events:
        user_id = event.get("state_key")
        if not isinstance(user_id, str) or content_of(event).get("membership") != "join":
            continue
        newest[user_id] = latest_event(newest.get(user_id), event) or event
    records = []
    for user_id in sorted(newest):
        content = content_of(newest[user_id])
        name = content.get("displayname") if isinstance(content.get("displayname"), str) else None
        avatar = content.get("avatar_url") if isinstance(content.get("avatar_url"), str) else None
        records.append(
            SourceRecord(
                remote_id=user_id,
                data=User(name=name, username=user_id),
                raw={"user_id": user_id, "displayname": name, "avatar_url": avatar},
            )
        )
    return records
