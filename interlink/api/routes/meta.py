"""Liveness, readiness and the JSON Schema of each entity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from interlink.api.problems import Problem, problem_response
from interlink.api.services import Services, get_services
from interlink.model import ENTITIES, ENTITIES_BY_PATH

router = APIRouter()


@router.get("/healthz", tags=["meta"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["meta"], response_model=None)
async def readyz(services: Annotated[Services, Depends(get_services)]) -> dict[str, str] | JSONResponse:
    try:
        async with services.db.read() as db:
            await db.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the reason goes into the response
        return problem_response(503, "not-ready", f"the database does not answer: {type(exc).__name__}")
    return {"status": "ready"}


@router.get("/v1/schemas/{entity}", tags=["schemas"])
async def entity_schema(entity: str) -> dict[str, Any]:
    """Return the JSON Schema of one unified entity's records (snake_case or kebab-case plural name)."""
    found = ENTITIES.get(entity) or ENTITIES_BY_PATH.get(entity)
    if found is None:
        raise Problem(404, "not-found", f"unknown entity {entity!r}; valid entities: {', '.join(ENTITIES)}")
    return found.record_model.model_json_schema()
