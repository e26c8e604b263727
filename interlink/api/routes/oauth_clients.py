"""The operator's OAuth client per integration, used by the connect flow's authorization code grant.

The client secret is stored encrypted and never returned. GET returns only whether a client is set.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from interlink.api.auth import CurrentPrincipal
from interlink.api.problems import Problem
from interlink.api.schemas import Body
from interlink.api.services import Services, get_services
from interlink.connectors.base import Integration
from interlink.connectors.oauth import authorization_code_spec
from interlink.connectors.registry import get_integration
from interlink.model import UtcDateTime
from interlink.store.oauth import OAuthClientSettings, OAuthClientState, oauth_client_state, save_oauth_client

router = APIRouter(tags=["integrations"])
ServicesDep = Annotated[Services, Depends(get_services)]


class OAuthClientIn(Body):
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: str = Field(min_length=1, max_length=4096)
    authorize_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Overrides the integration's authorize URL; may name credential fields, as {tenant_id}.",
    )
    token_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Overrides the integration's token URL; may name credential fields, as {tenant_id}.",
    )


class OAuthClientOut(BaseModel):
    integration: str
    configured: bool
    updated_at: UtcDateTime | None


def _oauth_integration(name: str) -> Integration:
    integration = get_integration(name)
    if integration is None:
        raise Problem(404, "not-found", f"integration {name} not found; see GET /v1/integrations")
    if not any(authorization_code_spec(name, scheme.name) for scheme in integration.auth_schemes):
        raise Problem(
            422,
            "oauth-not-supported",
            f"integration {name} has no auth scheme that signs in with OAuth, so it needs no OAuth client",
        )
    return integration


def _check_url(value: str | None, field: str) -> None:
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        message = f"{field} {value!r} is not an absolute https (or http) URL"
        raise Problem(422, "validation-error", message, errors=[{"field": field, "message": message}])


def _out(state: OAuthClientState) -> OAuthClientOut:
    return OAuthClientOut(
        integration=state.integration, configured=state.configured, updated_at=state.updated_at
    )


@router.put("/v1/integrations/{name}/oauth-client", response_model=OAuthClientOut)
async def put_oauth_client(
    name: str, body: OAuthClientIn, principal: CurrentPrincipal, services: ServicesDep
) -> OAuthClientOut:
    principal.require_operator()
    integration = _oauth_integration(name)
    _check_url(body.authorize_url, "authorize_url")
    _check_url(body.token_url, "token_url")
    client = OAuthClientSettings(body.client_id, body.client_secret, body.authorize_url, body.token_url)
    state = await save_oauth_client(
        services.db, services.credentials, integration.name, client, now=services.clock()
    )
    return _out(state)


@router.get("/v1/integrations/{name}/oauth-client", response_model=OAuthClientOut)
async def get_oauth_client(name: str, principal: CurrentPrincipal, services: ServicesDep) -> OAuthClientOut:
    principal.require_operator()
    integration = _oauth_integration(name)
    async with services.db.read() as connection:
        state = await oauth_client_state(connection, integration.name)
    return _out(state)
