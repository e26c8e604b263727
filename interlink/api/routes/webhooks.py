"""Webhook endpoints: create, list, read, change, delete, rotate the secret, and the delivery log.

Every call here needs an operator API key; connection tokens get 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from interlink.api.auth import CurrentPrincipal
from interlink.api.problems import Problem
from interlink.api.services import Services, get_services
from interlink.model import UtcDateTime
from interlink.store.cursors import InvalidCursor, decode_cursor, encode_cursor
from interlink.store.webhooks import (
    AttemptRow,
    EndpointRow,
    event_types_of,
    get_endpoint,
    list_attempts,
    list_endpoints,
)
from interlink.webhooks.endpoints import (
    InvalidEndpoint,
    NotFound,
    change_endpoint,
    create_endpoint,
    remove_endpoint,
    rotate_secret,
)
from interlink.webhooks.matrix_target import MatrixTarget, RoomCheckUnavailable, create_matrix_endpoint
from interlink.webhooks.urls import UrlGuard

router = APIRouter(tags=["webhooks"])
ServicesDep = Annotated[Services, Depends(get_services)]


def get_url_guard(services: ServicesDep) -> UrlGuard:
    """Build the URL policy from the settings. Tests override this dependency to resolve names locally."""
    return UrlGuard.from_settings(services.settings)


GuardDep = Annotated[UrlGuard, Depends(get_url_guard)]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None, max_length=2048, description="HTTPS URL that receives the events (kind https only)."
    )
    event_types: list[str] = Field(
        min_length=1, max_length=50, description='Event types to receive, or ["*"] for every type.'
    )
    connection_id: str | None = Field(
        default=None,
        description="Kind https: receive only this connection's events. "
        "Kind matrix: the Matrix connection that posts the messages (required).",
    )
    description: str | None = Field(default=None, max_length=1000)
    kind: Literal["https", "matrix"] = Field(
        default="https",
        description='"https" sends signed requests to url; "matrix" posts a message per event to room_id.',
    )
    room_id: str | None = Field(
        default=None,
        max_length=255,
        description="The id (!...) of a room the Matrix connection has joined (kind matrix only).",
    )


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=1000)
    status: Literal["enabled", "disabled"] | None = None


class EndpointOut(BaseModel):
    id: str
    kind: str
    url: str = Field(description="The HTTPS URL; for kind matrix, the room's matrix: URI.")
    room_id: str | None = Field(description="The Matrix room of a matrix endpoint; null for https.")
    description: str | None
    event_types: list[str]
    connection_id: str | None
    status: str
    disabled_reason: str | None
    disabled_at: UtcDateTime | None
    previous_secret_expires_at: UtcDateTime | None = Field(
        description="Until then the secret replaced by the last rotation signs too."
    )
    created_at: UtcDateTime
    updated_at: UtcDateTime
    secret: str | None = Field(
        default=None, description="The signing secret (whsec_...); shown once, when created or rotated."
    )


class EndpointPage(BaseModel):
    data: list[EndpointOut]
    next_cursor: str
    has_more: bool


class AttemptOut(BaseModel):
    id: str
    delivery_id: str
    event_id: str
    event_type: str | None
    attempt: int
    attempted_at: UtcDateTime
    succeeded: bool
    status_code: int | None = Field(description="The receiver's HTTP status; null when no response arrived.")
    latency_ms: int
    error: str | None
    next_attempt_at: UtcDateTime | None = Field(description="When the delivery is retried; null if never.")


class AttemptPage(BaseModel):
    data: list[AttemptOut]
    next_cursor: str
    has_more: bool


def endpoint_out(
    endpoint: EndpointRow, secret: str | None = None, *, now: datetime | None = None
) -> EndpointOut:
    expires_at = endpoint.previous_secret_expires_at
    if expires_at is not None and now is not None and expires_at <= now:
        expires_at = None
    return EndpointOut(
        id=endpoint.id,
        kind=endpoint.kind,
        url=endpoint.url,
        room_id=endpoint.room_id,
        description=endpoint.description,
        event_types=endpoint.event_types,
        connection_id=endpoint.connection_id,
        status=endpoint.status,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        previous_secret_expires_at=expires_at,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        secret=secret,
    )


def _invalid(exc: InvalidEndpoint) -> Problem:
    return Problem(
        422, "invalid-webhook-endpoint", str(exc), errors=[{"field": exc.field, "message": str(exc)}]
    )


def _not_found(exc: NotFound) -> Problem:
    return Problem(404, "not-found", str(exc))


@router.post("/v1/webhook-endpoints", status_code=201, response_model=EndpointOut)
async def create(
    body: EndpointCreate, principal: CurrentPrincipal, services: ServicesDep, guard: GuardDep
) -> EndpointOut:
    principal.require_operator()
    try:
        if body.kind == "matrix":
            return endpoint_out(await _create_matrix(body, services))
        if body.room_id is not None:
            raise InvalidEndpoint(
                'room_id is only for kind "matrix"; leave it out for an HTTPS endpoint', "room_id"
            )
        if body.url is None:
            raise InvalidEndpoint("url is missing; give the HTTPS URL that receives the events", "url")
        endpoint, secret = await create_endpoint(
            services.db,
            body.url,
            body.event_types,
            body.connection_id,
            body.description,
            credentials=services.credentials,
            guard=guard,
            now=services.clock(),
        )
    except InvalidEndpoint as exc:
        raise _invalid(exc) from exc
    return endpoint_out(endpoint, secret)


async def _create_matrix(body: EndpointCreate, services: Services) -> EndpointRow:
    if body.url is not None:
        raise InvalidEndpoint(
            'url is not used by kind "matrix"; room_id names the room that receives the events', "url"
        )
    target = MatrixTarget(services.db, services.credentials, http_factory=services.http_factory)
    try:
        return await create_matrix_endpoint(
            services.db,
            target,
            connection_id=body.connection_id,
            room_id=body.room_id,
            event_types=body.event_types,
            description=body.description,
            now=services.clock(),
        )
    except RoomCheckUnavailable as exc:
        raise Problem(503, "source-unavailable", str(exc)) from exc
    finally:
        await target.aclose()


@router.get("/v1/webhook-endpoints", response_model=EndpointPage)
async def list_all(
    principal: CurrentPrincipal,
    services: ServicesDep,
    connection_id: str | None = None,
    cursor: str | None = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EndpointPage:
    principal.require_operator()
    async with services.db.read() as db:
        rows = await list_endpoints(
            db, after_id=cursor or None, limit=page_size + 1, connection_id=connection_id
        )
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    now = services.clock()
    next_cursor = rows[-1].id if rows else (cursor or "")
    return EndpointPage(
        data=[endpoint_out(row, now=now) for row in rows], next_cursor=next_cursor, has_more=has_more
    )


@router.get("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
async def read(endpoint_id: str, principal: CurrentPrincipal, services: ServicesDep) -> EndpointOut:
    principal.require_operator()
    async with services.db.read() as db:
        endpoint = await get_endpoint(db, endpoint_id)
    if endpoint is None:
        raise Problem(404, "not-found", f"webhook endpoint {endpoint_id} not found")
    return endpoint_out(endpoint, now=services.clock())


@router.patch("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
async def patch(
    endpoint_id: str, body: EndpointPatch, principal: CurrentPrincipal, services: ServicesDep, guard: GuardDep
) -> EndpointOut:
    principal.require_operator()
    fields_set = body.model_fields_set
    if "url" in fields_set and body.url is None:
        raise Problem(
            422, "validation-error", "url cannot be null", errors=[{"field": "url", "message": "null"}]
        )
    if "event_types" in fields_set and body.event_types is None:
        raise Problem(
            422,
            "validation-error",
            "event_types cannot be null",
            errors=[{"field": "event_types", "message": "null"}],
        )
    try:
        endpoint = await change_endpoint(
            services.db,
            endpoint_id,
            guard=guard,
            now=services.clock(),
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            clear_description="description" in fields_set and body.description is None,
            status=body.status,
        )
    except InvalidEndpoint as exc:
        raise _invalid(exc) from exc
    except NotFound as exc:
        raise _not_found(exc) from exc
    return endpoint_out(endpoint, now=services.clock())


@router.delete("/v1/webhook-endpoints/{endpoint_id}", status_code=204)
async def delete(endpoint_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    principal.require_operator()
    try:
        await remove_endpoint(services.db, endpoint_id)
    except NotFound as exc:
        raise _not_found(exc) from exc
    return Response(status_code=204)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=EndpointOut)
async def rotate(endpoint_id: str, principal: CurrentPrincipal, services: ServicesDep) -> EndpointOut:
    principal.require_operator()
    now = services.clock()
    try:
        endpoint, secret = await rotate_secret(
            services.db, endpoint_id, credentials=services.credentials, now=now
        )
    except NotFound as exc:
        raise _not_found(exc) from exc
    except InvalidEndpoint as exc:
        raise _invalid(exc) from exc
    return endpoint_out(endpoint, secret, now=now)


@router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries", response_model=AttemptPage)
async def deliveries(
    endpoint_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    event_id: str | None = None,
    cursor: str | None = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AttemptPage:
    """List the endpoint's delivery attempts, newest first. ``next_cursor`` pages toward older ones."""
    principal.require_operator()
    filters = {"endpoint_id": endpoint_id, "event_id": event_id}
    try:
        before = decode_cursor(cursor, filters)[1] if cursor else None
    except InvalidCursor as exc:
        raise Problem(400, "invalid-cursor", str(exc)) from exc
    async with services.db.read() as db:
        if await get_endpoint(db, endpoint_id) is None:
            raise Problem(404, "not-found", f"webhook endpoint {endpoint_id} not found")
        rows = await list_attempts(db, endpoint_id, before_pk=before, limit=page_size + 1, event_id=event_id)
        has_more = len(rows) > page_size
        rows = rows[:page_size]
        types = await event_types_of(db, {row.event_id for row in rows})
    position = rows[-1].pk if rows else before
    next_cursor = encode_cursor((0, position), filters) if position is not None else ""
    return AttemptPage(
        data=[_attempt_out(row, types) for row in rows], next_cursor=next_cursor, has_more=has_more
    )


def _attempt_out(row: AttemptRow, types: dict[str, str]) -> AttemptOut:
    return AttemptOut(
        id=row.id,
        delivery_id=row.delivery_id,
        event_id=row.event_id,
        event_type=types.get(row.event_id),
        attempt=row.attempt,
        attempted_at=row.attempted_at,
        succeeded=row.succeeded,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        error=row.error,
        next_attempt_at=row.next_attempt_at,
    )
