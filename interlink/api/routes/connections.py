"""Connections: headless create, list, read, settings patch, delete, health, token rotation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import ValidationError

from interlink.api.auth import CurrentPrincipal
from interlink.api.problems import Problem
from interlink.api.schemas import (
    ConnectionCreate,
    ConnectionOut,
    ConnectionPatch,
    EndUser,
    EntitySyncState,
    HealthOut,
    ListPage,
    TokenOut,
)
from interlink.api.services import Services, get_services
from interlink.connections import (
    InvalidConnectionInput,
    check_entities,
    create_connection,
    replace_credentials,
    resolve_integration,
)
from interlink.crypto import generate_token, hash_token
from interlink.model import ConnectionSettings
from interlink.store.connections import (
    ConnectionRow,
    delete_connection,
    get_connection,
    issue_connection_token,
    list_connections,
    transition_status,
    update_connection,
)
from interlink.store.health import get_health
from interlink.store.runs import list_runs
from interlink.sync.scheduler import describe_entity_syncs, keep_schedules_in_step, wake_schedulers

router = APIRouter(tags=["connections"])
ServicesDep = Annotated[Services, Depends(get_services)]


def _invalid(exc: InvalidConnectionInput) -> Problem:
    errors = [{"field": exc.field, "message": str(exc)}] if exc.field else None
    return Problem(422, "invalid-connection", str(exc), errors=errors)


async def entity_sync_states(services: Services, row: ConnectionRow) -> list[EntitySyncState]:
    async with services.db.read() as db:
        overview = await describe_entity_syncs(db, row)
    return [EntitySyncState(**vars(entity)) for entity in overview]


async def connection_out(services: Services, row: ConnectionRow, token: str | None = None) -> ConnectionOut:
    return ConnectionOut(
        id=row.id,
        integration=row.integration,
        auth_scheme=row.auth_scheme,
        end_user=EndUser(id=row.end_user_id, name=row.end_user_name, email=row.end_user_email),
        status=row.status,
        status_reason=row.status_reason,
        status_detail=row.status_detail,
        settings=ConnectionSettings.model_validate(row.settings),
        created_at=row.created_at,
        updated_at=row.updated_at,
        sync=await entity_sync_states(services, row),
        connection_token=token,
    )


async def load_visible_connection(
    services: Services, principal: CurrentPrincipal, connection_id: str
) -> ConnectionRow:
    principal.check_connection(connection_id)
    async with services.db.read() as db:
        row = await get_connection(db, connection_id)
    if row is None:
        raise Problem(404, "not-found", f"connection {connection_id} not found")
    return row


@router.post("/v1/connections", status_code=201, response_model=ConnectionOut)
async def create(body: ConnectionCreate, principal: CurrentPrincipal, services: ServicesDep) -> ConnectionOut:
    principal.require_operator()
    try:
        created = await create_connection(
            services.db,
            services.credentials,
            services.http_factory,
            integration_name=body.integration,
            end_user=body.end_user.model_dump(),
            credentials=body.credentials,
            auth_scheme=body.auth_scheme,
            settings=body.settings,
        )
    except InvalidConnectionInput as exc:
        raise _invalid(exc) from exc
    row = created.connection
    async with services.db.write() as db:
        await keep_schedules_in_step(db, row.id, row.integration, row.settings, now=services.clock())
    wake_schedulers()
    return await connection_out(services, row, created.token)


@router.get("/v1/connections", response_model=ListPage[ConnectionOut])
async def list_all(
    principal: CurrentPrincipal,
    services: ServicesDep,
    end_user_id: str | None = None,
    cursor: str | None = None,
    page_size: int = 100,
) -> ListPage[ConnectionOut]:
    principal.require_operator()
    page_size = max(1, min(page_size, 1000))
    async with services.db.read() as db:
        rows = await list_connections(
            db, after_id=cursor or None, limit=page_size + 1, end_user_id=end_user_id
        )
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    data = [await connection_out(services, row) for row in rows]
    next_cursor = rows[-1].id if rows else (cursor or "")
    return ListPage(data=data, next_cursor=next_cursor, has_more=has_more)


@router.get("/v1/connection", response_model=ConnectionOut)
async def own_connection(principal: CurrentPrincipal, services: ServicesDep) -> ConnectionOut:
    if principal.connection_id is None:
        raise Problem(
            400, "connection-token-required", "GET /v1/connection needs a connection token (ilc_...)"
        )
    row = await load_visible_connection(services, principal, principal.connection_id)
    return await connection_out(services, row)


@router.get("/v1/connections/{connection_id}", response_model=ConnectionOut)
async def read(connection_id: str, principal: CurrentPrincipal, services: ServicesDep) -> ConnectionOut:
    principal.check_connection(connection_id)
    principal.require_operator()
    return await connection_out(services, await load_visible_connection(services, principal, connection_id))


@router.patch("/v1/connections/{connection_id}", response_model=ConnectionOut)
async def patch(
    connection_id: str, body: ConnectionPatch, principal: CurrentPrincipal, services: ServicesDep
) -> ConnectionOut:
    principal.check_connection(connection_id)
    principal.require_operator()
    row = await load_visible_connection(services, principal, connection_id)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"status", "credentials"})
    try:
        settings = ConnectionSettings.model_validate({**row.settings, **changes})
    except ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        raise Problem(
            422, "validation-error", f"invalid settings: {errors[0]['message']}", errors=errors
        ) from exc
    try:
        check_entities(resolve_integration(row.integration), settings)
    except InvalidConnectionInput as exc:
        raise _invalid(exc) from exc

    token: str | None = None
    if body.credentials is not None:
        try:
            token = await replace_credentials(
                services.db, services.credentials, services.http_factory, row, body.credentials
            )
        except InvalidConnectionInput as exc:
            raise _invalid(exc) from exc

    async with services.db.write() as db:
        await update_connection(db, connection_id, settings=settings.model_dump(mode="json"))
        if body.status == "disabled":
            await transition_status(db, connection_id, "disabled", reason="disabled_by_operator")
        elif body.status == "active" and body.credentials is None:
            await transition_status(db, connection_id, "active")
        updated = await get_connection(db, connection_id)
        assert updated is not None
        await keep_schedules_in_step(
            db, updated.id, updated.integration, updated.settings, now=services.clock()
        )
    wake_schedulers()
    return await connection_out(services, updated, token)


@router.delete("/v1/connections/{connection_id}", status_code=204)
async def delete(connection_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    principal.check_connection(connection_id)
    principal.require_operator()
    async with services.db.write() as db:
        if not await delete_connection(db, connection_id):
            raise Problem(404, "not-found", f"connection {connection_id} not found")
    return Response(status_code=204)


@router.get("/v1/connections/{connection_id}/health", response_model=HealthOut)
async def health(connection_id: str, principal: CurrentPrincipal, services: ServicesDep) -> HealthOut:
    principal.check_connection(connection_id)
    principal.require_operator()
    row = await load_visible_connection(services, principal, connection_id)
    async with services.db.read() as db:
        recent = await list_runs(db, connection_id, before_id=None, limit=20)
        check = await get_health(db, connection_id)
    # The newest error of a failed run or a failed check, as (time, message, code).
    errors: list[tuple[datetime, str | None, str | None]] = []
    if check is not None and check.last_error_at is not None:
        errors.append((check.last_error_at, check.last_error, check.last_error_code))
    failed_run = next((run for run in recent if run.status == "failed"), None)
    if failed_run is not None and failed_run.finished_at is not None:
        errors.append((failed_run.finished_at, failed_run.error, failed_run.error_code))
    newest = max(errors, key=lambda error: error[0]) if errors else (None, None, None)
    last_error_at, last_error, last_error_code = newest
    return HealthOut(
        connection_id=row.id,
        status=row.status,
        status_reason=row.status_reason,
        last_check_at=check.last_check_at if check else None,
        last_check_ok=check.last_check_ok if check else None,
        consecutive_failures=check.consecutive_failures if check else 0,
        next_check_at=check.next_check_at if check else None,
        last_error=last_error,
        last_error_code=last_error_code,
        last_error_at=last_error_at,
        entities=await entity_sync_states(services, row),
    )


@router.post("/v1/connections/{connection_id}/tokens", status_code=201, response_model=TokenOut)
async def new_token(connection_id: str, principal: CurrentPrincipal, services: ServicesDep) -> TokenOut:
    principal.check_connection(connection_id)
    principal.require_operator()
    await load_visible_connection(services, principal, connection_id)
    token = generate_token("ilc")
    async with services.db.write() as db:
        await issue_connection_token(db, connection_id, hash_token(token))
    return TokenOut(connection_id=connection_id, connection_token=token)
