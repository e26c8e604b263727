"""Manual sync triggers and the run history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from interlink.api.auth import CurrentPrincipal
from interlink.api.problems import Problem
from interlink.api.routes.connections import load_visible_connection
from interlink.api.schemas import ListPage, RunCounts, RunList, RunOut, SyncRequest
from interlink.api.services import Services, get_services
from interlink.connections import resolve_integration
from interlink.model import ConnectionSettings
from interlink.store.runs import RunRow, get_run, list_runs
from interlink.sync.requests import request_syncs

router = APIRouter(tags=["syncs"])
ServicesDep = Annotated[Services, Depends(get_services)]


def run_out(run: RunRow) -> RunOut:
    return RunOut(
        id=run.id,
        connection_id=run.connection_id,
        entity=run.entity,
        mode=run.mode,
        trigger=run.trigger,
        status=run.status,
        counts=RunCounts(**run.counts),
        queued_at=run.queued_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        error=run.error,
        error_code=run.error_code,
    )


@router.post("/v1/connections/{connection_id}/syncs", status_code=202, response_model=RunList)
async def trigger(
    connection_id: str, principal: CurrentPrincipal, services: ServicesDep, body: SyncRequest | None = None
) -> RunList:
    body = body or SyncRequest()
    connection = await load_visible_connection(services, principal, connection_id)
    if connection.status in ("disabled", "reauthorization_required"):
        raise Problem(
            409,
            "connection-not-active",
            f"connection {connection_id} is {connection.status}; "
            + (
                "enable it with PATCH status=active"
                if connection.status == "disabled"
                else "reconnect it first"
            ),
        )
    integration = resolve_integration(connection.integration)
    settings = ConnectionSettings.model_validate(connection.settings)
    enabled = settings.entities or integration.entity_names()
    entities = body.entities or enabled
    unknown = [entity for entity in entities if entity not in enabled]
    if unknown:
        raise Problem(
            422,
            "validation-error",
            f"entity {unknown[0]!r} is not enabled for this connection; enabled: {', '.join(enabled)}",
            errors=[{"field": "entities", "message": f"{unknown[0]!r} is not enabled"}],
        )
    runs = await request_syncs(
        services.db,
        services.dispatcher,
        connection_id=connection_id,
        entities=entities,
        mode=body.mode,
        trigger="api",
        now=services.clock(),
    )
    return RunList(data=[run_out(run) for run in runs])


@router.get("/v1/connections/{connection_id}/syncs", response_model=ListPage[RunOut])
async def history(
    connection_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    cursor: str | None = None,
    page_size: int = 50,
) -> ListPage[RunOut]:
    await load_visible_connection(services, principal, connection_id)
    page_size = max(1, min(page_size, 1000))
    async with services.db.read() as db:
        runs = await list_runs(db, connection_id, before_id=cursor or None, limit=page_size + 1)
    has_more = len(runs) > page_size
    runs = runs[:page_size]
    next_cursor = runs[-1].id if runs else (cursor or "")
    return ListPage(data=[run_out(run) for run in runs], next_cursor=next_cursor, has_more=has_more)


@router.get("/v1/sync-runs/{run_id}", response_model=RunOut)
async def one_run(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> RunOut:
    async with services.db.read() as db:
        run = await get_run(db, run_id)
    if run is None or principal.connection_id not in (None, run.connection_id):
        raise Problem(404, "not-found", f"sync run {run_id} not found")
    return run_out(run)
