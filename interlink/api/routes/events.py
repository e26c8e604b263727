"""The durable event log, oldest first, and redelivery of an event to webhook endpoints.

Operators read every event. A connection token reads only its own
connection's events; events of no connection (an operator-wide endpoint's
``webhook_endpoint.disabled``) are hidden from it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from interlink.api.auth import CurrentPrincipal, Principal
from interlink.api.problems import Problem
from interlink.api.schemas import EventOut
from interlink.api.services import Services, get_services
from interlink.model import UtcDateTime
from interlink.store.cursors import InvalidCursor, decode_cursor, encode_cursor
from interlink.store.events import EVENT_TYPES, Event, list_events
from interlink.store.webhooks import DeliveryRow, get_event
from interlink.webhooks.endpoints import NotFound, RedeliveryRejected, redeliver_event

router = APIRouter(tags=["events"])
ServicesDep = Annotated[Services, Depends(get_services)]


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str
    has_more: bool


class RedeliverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_id: str | None = Field(
        default=None, description="Send to this endpoint only; by default to every subscribed endpoint."
    )


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: UtcDateTime


class DeliveryList(BaseModel):
    data: list[DeliveryOut]


def event_out(event: Event) -> EventOut:
    return EventOut(
        id=event.id,
        type=event.type,
        connection_id=event.connection_id,
        data=event.data,
        created_at=event.created_at,
    )


def _connection_filter(principal: Principal, connection_id: str | None) -> str | None:
    if principal.connection_id is None:
        return connection_id
    if connection_id is not None and connection_id != principal.connection_id:
        raise Problem(403, "forbidden", "a connection token may only read its own connection's events")
    return principal.connection_id


@router.get("/v1/events", response_model=EventPage)
async def list_all(
    principal: CurrentPrincipal,
    services: ServicesDep,
    type: str | None = None,
    connection_id: str | None = None,
    cursor: str | None = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    """List the event log in commit order.

    A client that keeps ``next_cursor`` and polls again receives every later event exactly once.
    """
    if type is not None and type not in EVENT_TYPES:
        raise Problem(
            422,
            "validation-error",
            f"unknown event type {type!r}; valid types: {', '.join(EVENT_TYPES)}",
            errors=[{"field": "type", "message": f"unknown event type {type!r}"}],
        )
    filters = {"type": type, "connection_id": _connection_filter(principal, connection_id)}
    try:
        after = decode_cursor(cursor, filters) if cursor else None
    except InvalidCursor as exc:
        raise Problem(400, "invalid-cursor", str(exc)) from exc

    async with services.db.read() as db:
        rows = await list_events(
            db,
            after=after,
            limit=page_size + 1,
            event_type=filters["type"],
            connection_id=filters["connection_id"],
        )
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    position = (rows[-1].seq, rows[-1].pk) if rows else (after or (0, 0))
    return EventPage(
        data=[event_out(row) for row in rows],
        next_cursor=encode_cursor(position, filters),
        has_more=has_more,
    )


@router.get("/v1/events/{event_id}", response_model=EventOut)
async def read(event_id: str, principal: CurrentPrincipal, services: ServicesDep) -> EventOut:
    async with services.db.read() as db:
        event = await get_event(db, event_id)
    if event is None or principal.connection_id not in (None, event.connection_id):
        raise Problem(404, "not-found", f"event {event_id} not found")
    return event_out(event)


@router.post("/v1/events/{event_id}/redeliver", status_code=202, response_model=DeliveryList)
async def redeliver(
    event_id: str, principal: CurrentPrincipal, services: ServicesDep, body: RedeliverRequest | None = None
) -> DeliveryList:
    """Send an event again, with the same ``webhook-id`` and body, to one endpoint or every subscribed one."""
    principal.require_operator()
    body = body or RedeliverRequest()
    try:
        queued = await redeliver_event(
            services.db, event_id, endpoint_id=body.endpoint_id, now=services.clock()
        )
    except NotFound as exc:
        raise Problem(404, "not-found", str(exc)) from exc
    except RedeliveryRejected as exc:
        raise Problem(409, "redelivery-rejected", str(exc)) from exc
    return DeliveryList(data=[_delivery_out(row) for row in queued])


def _delivery_out(row: DeliveryRow) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
    )
