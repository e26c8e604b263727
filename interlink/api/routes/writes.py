"""``POST /v1/{entity}``: create a record in the source system, safe to retry with ``Idempotency-Key``.

A route exists for each entity that at least one installed integration can
write. Whether the integration of the connection at hand can write it is
checked per request. References are given as ``<field>_id`` with Interlink ids.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse

from interlink.api.auth import CurrentPrincipal
from interlink.api.problems import Problem, problem_response
from interlink.api.routes.records import record_json
from interlink.api.services import Services, get_services
from interlink.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    PermissionDenied,
    RetryableError,
    SourceRejected,
)
from interlink.connectors.registry import integrations
from interlink.model import ENTITIES, Entity
from interlink.writes import (
    ConnectionNotWritable,
    IdempotencyKeyReused,
    InvalidWrite,
    WriteError,
    WriteForbidden,
    WriteNotSupported,
    WriteService,
)

router = APIRouter(tags=["writes"])

_MAX_KEY_LENGTH = 255
# Annotations are evaluated in module scope, so the body's declaration is a module global.
_BODY = Body(
    description="The entity's fields, with each reference given as <field>_id and an Interlink id.",
    examples=[
        {
            "conversation_id": "cnv_...",
            "body": "Pump 7 is fixed",
            "body_html": "<b>Pump 7</b> is fixed",
            "reply_to_id": "msg_...",
        }
    ],
)


def _problem(exc: WriteError) -> Problem:
    if isinstance(exc, WriteForbidden):
        return Problem(403, "forbidden", str(exc))
    if isinstance(exc, ConnectionNotWritable):
        return Problem(409, "connection-not-active", str(exc))
    if isinstance(exc, IdempotencyKeyReused):
        return Problem(422, "idempotency-key-reused", str(exc), errors=exc.errors)
    if isinstance(exc, WriteNotSupported):
        return Problem(422, "write-not-supported", str(exc))
    assert isinstance(exc, InvalidWrite)
    return Problem(422, "invalid-write", str(exc), errors=exc.errors)


def _source_problem(exc: ConnectorError) -> JSONResponse:
    """Return the problem response for a failure of the source; ``detail`` keeps the source's reason."""
    if isinstance(exc, AuthenticationError):
        return problem_response(
            409, "connection-not-active", f"the source rejected the connection's credentials: {exc}"
        )
    if isinstance(exc, RetryableError):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
        return problem_response(503, "source-unavailable", f"{exc}; retry later", headers=headers)
    if isinstance(exc, SourceRejected | PermissionDenied):
        return problem_response(422, "source-rejected", f"the source rejected the write: {exc}")
    return problem_response(502, "source-error", f"the source failed: {exc}")


def _check_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 0 < len(value) <= _MAX_KEY_LENGTH or not value.isprintable():
        raise Problem(
            422,
            "invalid-write",
            f"Idempotency-Key must be 1 to {_MAX_KEY_LENGTH} printable characters",
            errors=[{"field": "Idempotency-Key", "location": "header", "message": "invalid value"}],
        )
    return value


def _register(entity: Entity) -> None:
    noun = entity.name.replace("_", " ")

    @router.post(
        f"/v1/{entity.path}",
        status_code=201,
        response_model=entity.record_model,
        name=f"create_{entity.name}",
        summary=f"Create a {noun} in the source system",
        responses={422: {"description": "Invalid body, or an Idempotency-Key reused with another body"}},
    )
    async def create(
        principal: CurrentPrincipal,
        services: Annotated[Services, Depends(get_services)],
        body: Annotated[dict[str, Any], _BODY],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        service = WriteService(services.db, services.credentials, services.http_factory, services.clock)
        try:
            result = await service.create(
                entity.name,
                body,
                caller_connection_id=principal.connection_id,
                idempotency_key=_check_key(idempotency_key),
            )
        except WriteError as exc:
            raise _problem(exc) from exc
        except ConnectorError as exc:
            return _source_problem(exc)
        # A replay returns the status and record of the first request, marked by a header.
        return JSONResponse(
            record_json(result.record, result.integration, include_remote_data=False),
            status_code=201,
            headers={"Idempotent-Replayed": "true"} if result.replayed else None,
        )


_WRITABLE = {
    capabilities.entity
    for integration in integrations().values()
    for capabilities in integration.entities
    if capabilities.write
}
for _entity in ENTITIES.values():
    if _entity.name in _WRITABLE:
        _register(_entity)
