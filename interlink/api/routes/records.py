"""``GET /v1/{entity}`` and ``GET /v1/{entity}/{id}``: unified records, the same for every integration."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, create_model
from sqlalchemy import select

from interlink.api.auth import CurrentPrincipal
from interlink.api.problems import Problem
from interlink.api.services import Services, get_services
from interlink.model import ENTITIES, Entity, format_utc
from interlink.store.cursors import InvalidCursor, decode_cursor, encode_cursor
from interlink.store.records import RecordFilter, StoredRecord, get_record, list_records, record_filter_key
from interlink.store.tables import connections

router = APIRouter(tags=["records"])


def _time(value: datetime | None) -> str | None:
    return format_utc(value) if value is not None else None


def record_json(record: StoredRecord, integration: str, *, include_remote_data: bool) -> dict[str, Any]:
    """Shape a stored record as the API returns it: the envelope, then the entity's fields."""
    body: dict[str, Any] = {
        "id": record.id,
        "remote_id": record.remote_id,
        "connection_id": record.connection_id,
        "integration": integration,
        "remote_created_at": _time(record.remote_created_at),
        "remote_updated_at": _time(record.remote_updated_at),
        "created_at": _time(record.created_at),
        "modified_at": _time(record.modified_at),
        "deleted": record.deleted,
        "deleted_at": _time(record.deleted_at),
    }
    body.update(record.data)
    if include_remote_data:
        body["remote_data"] = record.raw
    return body


async def _integrations_of(db: Any, connection_ids: set[str]) -> dict[str, str]:
    if not connection_ids:
        return {}
    rows = await db.execute(
        select(connections.c.id, connections.c.integration).where(connections.c.id.in_(connection_ids))
    )
    return {row.id: row.integration for row in rows}


def _register(entity: Entity) -> None:
    page_model = create_model(
        f"{entity.title}List",
        data=(list[entity.record_model], ...),  # type: ignore[name-defined]
        next_cursor=(str, ...),
        has_more=(bool, ...),
    )

    @router.get(
        f"/v1/{entity.path}",
        response_model=page_model,
        name=f"list_{entity.name}s",
        summary=f"List {entity.name.replace('_', ' ')}s in commit order",
    )
    async def list_entity(
        principal: CurrentPrincipal,
        services: Annotated[Services, Depends(get_services)],
        connection_id: Annotated[
            str | None, Query(description="Only this connection's records (implied by a connection token).")
        ] = None,
        end_user_id: Annotated[
            str | None, Query(description="Only records of the connections of this end user.")
        ] = None,
        remote_id: Annotated[str | None, Query(description="The record with this source key.")] = None,
        modified_after: Annotated[
            AwareDatetime | None, Query(description="Records Interlink changed after this RFC 3339 time.")
        ] = None,
        remote_updated_after: Annotated[
            AwareDatetime | None, Query(description="Records the source changed after this RFC 3339 time.")
        ] = None,
        include_deleted: Annotated[
            bool, Query(description="Also return records the source deleted, with deleted=true.")
        ] = False,
        include_remote_data: Annotated[
            bool, Query(description="Add the raw source record as remote_data.")
        ] = False,
        page_size: Annotated[int, Query(ge=1, le=1000, description="Records per page, 1 to 1000.")] = 100,
        cursor: Annotated[
            str | None,
            Query(description="The next_cursor of the previous page; it is bound to the filters above."),
        ] = None,
    ) -> JSONResponse:
        record_filter = RecordFilter(
            entity=entity.name,
            connection_id=principal.check_connection_filter(connection_id),
            end_user_id=end_user_id,
            remote_id=remote_id,
            modified_after=modified_after,
            remote_updated_after=remote_updated_after,
            include_deleted=include_deleted,
        )
        filter_key = record_filter_key(record_filter)
        try:
            after = decode_cursor(cursor, filter_key) if cursor else None
        except InvalidCursor as exc:
            raise Problem(400, "invalid-cursor", str(exc)) from exc

        async with services.db.read() as db:
            rows = await list_records(db, record_filter, after=after, limit=page_size + 1)
            has_more = len(rows) > page_size
            rows = rows[:page_size]
            names = await _integrations_of(db, {row.connection_id for row in rows})

        position = (rows[-1].change_seq, rows[-1].pk) if rows else (after or (0, 0))
        return JSONResponse(
            {
                "data": [
                    record_json(
                        row, names.get(row.connection_id, ""), include_remote_data=include_remote_data
                    )
                    for row in rows
                ],
                "next_cursor": encode_cursor(position, filter_key),
                "has_more": has_more,
            }
        )

    @router.get(
        f"/v1/{entity.path}/{{record_id}}",
        response_model=entity.record_model,
        name=f"get_{entity.name}",
        summary=f"Get one {entity.name.replace('_', ' ')}",
    )
    async def get_entity(
        record_id: str,
        principal: CurrentPrincipal,
        services: Annotated[Services, Depends(get_services)],
        include_remote_data: bool = False,
    ) -> JSONResponse:
        async with services.db.read() as db:
            row = await get_record(db, entity.name, record_id)
            if row is None or (principal.connection_id not in (None, row.connection_id)):
                raise Problem(404, "not-found", f"{entity.name.replace('_', ' ')} {record_id} not found")
            names = await _integrations_of(db, {row.connection_id})
        return JSONResponse(
            record_json(row, names.get(row.connection_id, ""), include_remote_data=include_remote_data)
        )


for _entity in ENTITIES.values():
    _register(_entity)
