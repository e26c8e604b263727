"""Turning a connector's record into a stored one: serialized, hashed, with its Interlink id.

The sync engine and the API's write path both store records through this one
function, so a record written through the API is found unchanged by the
next sync.

The content hash is the SHA-256 of one JSON object, keys sorted::

    {"data":…,"deleted":…,"raw":…,"remote_created_at":…,"remote_updated_at":…}

``data`` is the unified model's own JSON, as it is stored: fields in the
model's order, decimals as their text, times in UTC. The model fixes that
order, so it needs no sorting. Everything else is canonical JSON
(``interlink.model.canonical``): sorted keys, normalized decimals, UTC times.
docs/decisions/content-hash.md says why.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from interlink.connectors.base import Integration, SourceRecord
from interlink.model import canonical_json, format_utc
from interlink.model.ids import build_record_id
from interlink.store.records import PreparedRecord


def prepare_record(
    connection_id: str, integration: Integration, entity: str, record: SourceRecord
) -> PreparedRecord:
    """Serialize ``record`` and compute its content hash, without the integration's volatile raw fields."""
    # The stored JSON of the unified fields, written by pydantic's serializer in one call.
    data = type(record.data).__pydantic_serializer__.to_json(record.data)
    raw = record.raw
    if integration.volatile_fields:
        raw = {key: value for key, value in raw.items() if key not in integration.volatile_fields}
    created, updated = _utc_text(record.remote_created_at), _utc_text(record.remote_updated_at)
    rest = canonical_json(
        {"deleted": record.deleted, "raw": raw, "remote_created_at": created, "remote_updated_at": updated}
    )
    # "data" sorts before the other keys, so it goes first: '{"data":' + data + ',' + '"deleted":...}'.
    digest = hashlib.sha256(b'{"data":' + data + b"," + rest[1:]).hexdigest()
    return PreparedRecord(
        id=build_record_id(connection_id, entity, record.remote_id),
        remote_id=record.remote_id,
        data=data.decode(),
        raw=raw if isinstance(raw, dict) else dict(raw),
        content_hash=digest,
        remote_created_at=created,
        remote_updated_at=updated,
        deleted=record.deleted,
    )


def _utc_text(value: datetime | None) -> str | None:
    """Format a remote time as RFC 3339 in UTC, or raise ``ValueError`` for a time without an offset."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(
            f"naive datetime {value!r} given as a remote time. "
            "The connector must return it with its UTC offset, for example with tzinfo=UTC."
        )
    return format_utc(value)
