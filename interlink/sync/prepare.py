"""Turning a connector's record into a stored one: serialized, hashed, with its Interlink id.

The sync engine and the API's write path both store records through this one
function, so a record written through the API is found unchanged by the
next sync.
"""

from __future__ import annotations

from datetime import datetime

from interlink.connectors.base import Integration, SourceRecord
from interlink.model import content_hash, format_utc
from interlink.model.ids import build_record_id
from interlink.store.records import PreparedRecord


def prepare_record(
    connection_id: str, integration: Integration, entity: str, record: SourceRecord
) -> PreparedRecord:
    """Serialize ``record`` and compute its content hash, without the integration's volatile raw fields."""
    # What model_dump(mode="json") returns, without its Python wrapper: this runs once per record.
    data = type(record.data).__pydantic_serializer__.to_python(record.data, mode="json")
    raw = record.raw
    if integration.volatile_fields:
        raw = {key: value for key, value in raw.items() if key not in integration.volatile_fields}
    created, updated = record.remote_created_at, record.remote_updated_at
    digest = content_hash(
        {
            "data": data,
            "raw": raw,
            # Written here as canonical_json would write them, so orjson need not call back into Python.
            "remote_created_at": None if created is None else _utc_text(created),
            "remote_updated_at": None if updated is None else _utc_text(updated),
            "deleted": record.deleted,
        }
    )
    return PreparedRecord(
        id=build_record_id(connection_id, entity, record.remote_id),
        remote_id=record.remote_id,
        data=data,
        raw=raw if isinstance(raw, dict) else dict(raw),
        content_hash=digest,
        remote_created_at=record.remote_created_at,
        remote_updated_at=record.remote_updated_at,
        deleted=record.deleted,
    )


def _utc_text(value: datetime) -> str:
    return format_utc(value) if value.tzinfo else value.isoformat()
