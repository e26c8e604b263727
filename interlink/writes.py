"""Writes through the API: resolve references, call the connector's writer, store the result.

A write is sent to the source through the connector of its connection,
built the way the sync engine builds it. The record the source returns is
stored at once, together with the write's ``Idempotency-Key``. Its remote
id is the source's own key, so the next sync finds the same record rather
than a duplicate. A retried request with the same key and body gets that
record back without a second write, also after a restart of Interlink or
of the source. The same key with another body is rejected.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from interlink.connectors.base import ConnectorContext, Integration, SourceRecord
from interlink.connectors.errors import AuthenticationError
from interlink.connectors.registry import get_integration
from interlink.crypto import CredentialBox
from interlink.errors import InterlinkError
from interlink.model import Entity, Ref, content_hash, get_entity
from interlink.model.ids import RECORD_ID_PREFIXES
from interlink.store import Database
from interlink.store.connections import ConnectionRow, get_connection, transition_status, update_connection
from interlink.store.cursors import encode_cursor
from interlink.store.events import append_event
from interlink.store.idempotency import IdempotencyKeyRow, get_idempotency_key, insert_idempotency_key
from interlink.store.records import (
    PreparedRecord,
    RecordFilter,
    StoredRecord,
    UpsertCounts,
    get_record,
    position_before,
    record_filter_key,
    upsert_page,
)
from interlink.sync.engine import HttpFactory
from interlink.sync.prepare import prepare_record

logger = logging.getLogger(__name__)

_BLOCKED_STATUSES = ("disabled", "reauthorization_required")
_ENTITY_BY_PREFIX = {prefix: entity for entity, prefix in RECORD_ID_PREFIXES.items()}


class WriteError(InterlinkError):
    """A write cannot be made as requested; ``errors`` names the offending fields when there are some."""

    def __init__(
        self, message: str, *, field: str | None = None, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.errors = (
            errors if errors is not None else ([{"field": field, "message": message}] if field else [])
        )


class InvalidWrite(WriteError):
    """The write's body is invalid."""


class WriteForbidden(WriteError):
    """The caller may not write to the connection it named."""


class WriteNotSupported(WriteError):
    """The connection's integration cannot create records of this entity."""


class ConnectionNotWritable(WriteError):
    """The connection is disabled or needs reauthorization."""


class IdempotencyKeyReused(WriteError):
    """The idempotency key was used before for a different request."""


@dataclass(frozen=True)
class WriteResult:
    record: StoredRecord
    integration: str
    replayed: bool


def reference_fields(entity: Entity) -> set[str]:
    """Return the fields of ``entity`` that hold one reference, which a write body gives as ``<field>_id``."""
    fields = set()
    for name, info in entity.data_model.model_fields.items():
        annotation = info.annotation
        is_union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        if annotation is Ref or (is_union and Ref in typing.get_args(annotation)):
            fields.add(name)
    return fields


@dataclass
class WriteService:
    """Creates records in source systems on behalf of API callers."""

    db: Database
    credentials: CredentialBox
    http_factory: HttpFactory
    clock: Callable[[], datetime]
    integration_lookup: Callable[[str], Integration | None] = get_integration

    async def create(
        self,
        entity_name: str,
        body: Mapping[str, Any],
        *,
        caller_connection_id: str | None,
        idempotency_key: str | None,
    ) -> WriteResult:
        """Create one record of ``entity_name`` from an API body.

        ``caller_connection_id`` is set when a connection token calls. Such a
        caller may write only to its own connection, and other connections'
        records are "not found" for it.
        """
        entity = get_entity(entity_name)
        request_hash = content_hash({"entity": entity_name, "body": dict(body)})
        data, referenced = await self._resolve(entity, body, caller_connection_id)
        connection = await self._connection(body, referenced, caller_connection_id)
        integration = self._integration(connection, entity_name)

        if idempotency_key is not None:
            replay = await self._replay(connection.id, entity_name, idempotency_key, request_hash)
            if replay is not None:
                logger.info(
                    "write.replayed connection_id=%s entity=%s record_id=%s",
                    connection.id,
                    entity_name,
                    replay.id,
                )
                return WriteResult(record=replay, integration=integration.name, replayed=True)
        if connection.status in _BLOCKED_STATUSES:
            raise ConnectionNotWritable(
                f"connection {connection.id} is {connection.status}; "
                + (
                    "enable it again"
                    if connection.status == "disabled"
                    else "reconnect it with new credentials"
                )
            )

        record = await self._send(connection, integration, entity_name, data, idempotency_key)
        prepared = prepare_record(connection.id, integration, entity_name, record)
        stored = await self._store(connection.id, entity_name, prepared, idempotency_key, request_hash)
        logger.info(
            "write.created connection_id=%s entity=%s record_id=%s remote_id=%s",
            connection.id,
            entity_name,
            stored.id,
            stored.remote_id,
        )
        return WriteResult(record=stored, integration=integration.name, replayed=False)

    async def _resolve(
        self, entity: Entity, body: Mapping[str, Any], caller_connection_id: str | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Replace each ``<field>_id`` by the reference it names.

        Returns the data for the writer and the connection of each referenced record.
        """
        ref_fields = reference_fields(entity)
        data: dict[str, Any] = {}
        referenced: dict[str, str] = {}
        for key, value in body.items():
            if key == "connection_id":
                continue
            if key in ref_fields:
                raise InvalidWrite(f"give {key}_id with an Interlink id instead of {key}", field=key)
            stem = key.removesuffix("_id")
            if key == stem or stem not in ref_fields or value is None:
                data[key] = value
                continue
            row = await self._referenced_record(key, value, caller_connection_id)
            data[stem] = {"id": row.id, "remote_id": row.remote_id}
            referenced[key] = row.connection_id
        return data, referenced

    async def _referenced_record(
        self, field: str, value: Any, caller_connection_id: str | None
    ) -> StoredRecord:
        entity = _ENTITY_BY_PREFIX.get(value.split("_", 1)[0]) if isinstance(value, str) else None
        if entity is None:
            raise InvalidWrite(f"{field} must be an Interlink record id such as 'cnv_...'", field=field)
        async with self.db.read() as db:
            row = await get_record(db, entity, value)
        if row is None or caller_connection_id not in (None, row.connection_id):
            raise InvalidWrite(f"{field} {value!r} was not found", field=field)
        return row

    async def _connection(
        self, body: Mapping[str, Any], referenced: Mapping[str, str], caller_connection_id: str | None
    ) -> ConnectionRow:
        named = body.get("connection_id")
        if named is not None and not isinstance(named, str):
            raise InvalidWrite(
                "connection_id must be a connection id such as 'con_...'", field="connection_id"
            )
        if caller_connection_id is not None and named not in (None, caller_connection_id):
            raise WriteForbidden(
                "a connection token may only write to its own connection", field="connection_id"
            )
        candidates = {caller_connection_id, named, *referenced.values()} - {None}
        if len(candidates) > 1:
            fields = ", ".join(sorted(referenced))
            raise InvalidWrite(
                f"the records named by {fields} belong to another connection than connection_id {named}; "
                "one write goes to one connection",
                field=next(iter(sorted(referenced)), "connection_id"),
            )
        if not candidates:
            raise InvalidWrite(
                "connection_id is missing; give it, or reference a record of the connection",
                field="connection_id",
            )
        (connection_id,) = candidates
        assert connection_id is not None
        async with self.db.read() as db:
            connection = await get_connection(db, connection_id)
        if connection is None:
            raise InvalidWrite(f"connection_id {connection_id!r} was not found", field="connection_id")
        return connection

    def _integration(self, connection: ConnectionRow, entity_name: str) -> Integration:
        integration = self.integration_lookup(connection.integration)
        capabilities = integration.capabilities(entity_name) if integration is not None else None
        if integration is None or capabilities is None or not capabilities.write:
            raise WriteNotSupported(
                f"integration {connection.integration!r} of connection {connection.id} cannot create "
                f"{entity_name.replace('_', ' ')} records; GET /v1/integrations lists what each can write"
            )
        return integration

    async def _replay(
        self, connection_id: str, entity_name: str, key: str, request_hash: str
    ) -> StoredRecord | None:
        async with self.db.read() as db:
            row = await get_idempotency_key(db, connection_id, key)
            if row is None:
                return None
            if row.request_hash != request_hash:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {key!r} was used before with a different request body; "
                    "use a new key for a new request",
                    field="Idempotency-Key",
                )
            return await get_record(db, entity_name, row.record_id)

    async def _send(
        self,
        connection: ConnectionRow,
        integration: Integration,
        entity_name: str,
        data: Mapping[str, Any],
        idempotency_key: str | None,
    ) -> SourceRecord:
        async with self.http_factory() as http:
            context = ConnectorContext(
                connection_id=connection.id,
                auth_scheme=connection.auth_scheme,
                credentials=self.credentials.decrypt(connection.credentials),
                http=http,
                save_credentials=lambda values: self._save_credentials(connection.id, values),
            )
            writer = integration.build(context).writer(entity_name)
            if writer is None:
                raise WriteNotSupported(f"integration {integration.name!r} has no writer for {entity_name}")
            try:
                return await writer.create(data, idempotency_key=idempotency_key)
            except ValidationError as exc:
                raise _invalid_input(exc, reference_fields(get_entity(entity_name))) from exc
            except AuthenticationError as exc:
                logger.warning(
                    "write.unauthorized connection_id=%s code=%s error=%s",
                    connection.id,
                    exc.reason_code,
                    exc,
                )
                async with self.db.write() as db:
                    await transition_status(
                        db, connection.id, "reauthorization_required", reason=exc.reason_code, detail=str(exc)
                    )
                raise

    async def _store(
        self,
        connection_id: str,
        entity_name: str,
        prepared: PreparedRecord,
        key: str | None,
        request_hash: str,
    ) -> StoredRecord:
        now = self.clock()
        async with self.db.write() as db:
            counts = await upsert_page(
                db, connection_id=connection_id, entity=entity_name, page=[prepared], now=now
            )
            await self._announce(db, connection_id, entity_name, counts)
            result_id = prepared.id
            if key is not None:
                row = IdempotencyKeyRow(connection_id, key, request_hash, prepared.id, now)
                if not await insert_idempotency_key(db, row):
                    result_id = await self._concurrent_result(db, row)
            stored = await get_record(db, entity_name, result_id)
        assert stored is not None
        return stored

    async def _announce(self, db: Any, connection_id: str, entity_name: str, counts: UpsertCounts) -> None:
        """Append ``records.changed`` as a sync run does, so webhook subscribers hear of written records."""
        if not counts.changed or counts.change_seq is None:
            return
        record_filter = RecordFilter(entity=entity_name, connection_id=connection_id, include_deleted=True)
        cursor = encode_cursor(position_before(counts.change_seq), record_filter_key(record_filter))
        change = {"created": counts.created, "updated": counts.updated, "deleted": counts.deleted}
        await append_event(
            db,
            "records.changed",
            {
                "run_id": None,
                "entities": {entity_name: {"count": counts.changed, "counts": change, "cursor": cursor}},
            },
            connection_id=connection_id,
        )

    async def _concurrent_result(self, db: Any, row: IdempotencyKeyRow) -> str:
        """Return the record of a write with the same key that committed first."""
        existing = await get_idempotency_key(db, row.connection_id, row.key)
        assert existing is not None
        if existing.request_hash != row.request_hash:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {row.key!r} was used at the same time for a different request body",
                field="Idempotency-Key",
            )
        if existing.record_id != row.record_id:
            logger.warning(
                "write.duplicate connection_id=%s key_record_id=%s other_record_id=%s",
                row.connection_id,
                existing.record_id,
                row.record_id,
            )
        return existing.record_id

    async def _save_credentials(self, connection_id: str, values: Mapping[str, str]) -> None:
        """Store refreshed credentials before the connector uses them, as the sync engine does."""
        async with self.db.write() as db:
            connection = await get_connection(db, connection_id)
            if connection is None:
                return
            merged = {**self.credentials.decrypt(connection.credentials), **values}
            await update_connection(db, connection_id, credentials=self.credentials.encrypt(merged))


def _invalid_input(exc: ValidationError, ref_fields: set[str]) -> InvalidWrite:
    """Turn a connector's input validation error into one that names the API's own field names."""
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        if location and location[0] in ref_fields:
            location[0] = f"{location[0]}_id"
        errors.append({"field": ".".join(location) or "body", "message": error.get("msg", "invalid value")})
    summary = "; ".join(f"{error['field']}: {error['message']}" for error in errors[:5])
    return InvalidWrite(f"the request is invalid: {summary}", errors=errors)
