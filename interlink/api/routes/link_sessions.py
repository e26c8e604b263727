"""Link sessions of the hosted connect flow: start one, and exchange the one-time code it ends with.

Both calls need an operator API key: the vendor's backend makes them, never the end user's browser.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from interlink.api.auth import CurrentPrincipal
from interlink.api.problems import Problem
from interlink.api.schemas import Body, EndUser
from interlink.api.services import Services, get_services
from interlink.connect.sessions import LinkSessionInvalid, exchange, start_link_session
from interlink.model import UtcDateTime
from interlink.webhooks import UrlGuard

router = APIRouter(tags=["link sessions"])
ServicesDep = Annotated[Services, Depends(get_services)]


def get_link_url_guard(services: ServicesDep) -> UrlGuard:
    """Build the URL policy for a session's ``webhook_url`` from the settings; tests may override it."""
    return UrlGuard.from_settings(services.settings)


GuardDep = Annotated[UrlGuard, Depends(get_link_url_guard)]


class LinkSessionCreate(Body):
    end_user: EndUser
    integrations: list[str] | None = Field(
        default=None, min_length=1, max_length=100, description="Integrations to offer; default: all."
    )
    connection_id: str | None = Field(
        default=None, description="Reconnect this connection: its records and cursors are kept."
    )
    redirect_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the browser goes when done, with `code` (and `state`) added to the query.",
    )
    webhook_url: str | None = Field(
        default=None, max_length=2048, description="Becomes a webhook endpoint for the connection's events."
    )
    state: str | None = Field(
        default=None, max_length=512, description="Returned unchanged beside `code` on the redirect."
    )


class LinkSessionOut(BaseModel):
    link_url: str = Field(description="Send the end user here; it works once, until `expires_at`.")
    expires_at: UtcDateTime


class ExchangeIn(Body):
    code: str = Field(min_length=1, max_length=200)


class ExchangeOut(BaseModel):
    connection_id: str
    connection_token: str = Field(description="Shown once; every earlier token of the connection is revoked.")
    webhook_secret: str | None = Field(
        default=None, description="The signing secret of the endpoint made from `webhook_url`, shown once."
    )


@router.post("/v1/link-sessions", status_code=201, response_model=LinkSessionOut)
async def create(
    body: LinkSessionCreate, principal: CurrentPrincipal, services: ServicesDep, guard: GuardDep
) -> LinkSessionOut:
    principal.require_operator()
    try:
        session = await start_link_session(
            services,
            guard,
            end_user=body.end_user.model_dump(),
            integration_names=body.integrations,
            connection_id=body.connection_id,
            redirect_url=body.redirect_url,
            webhook_url=body.webhook_url,
            state=body.state,
        )
    except LinkSessionInvalid as exc:
        raise Problem(
            422, "invalid-link-session", str(exc), errors=[{"field": exc.field, "message": str(exc)}]
        ) from exc
    return LinkSessionOut(link_url=session.link_url, expires_at=session.expires_at)


@router.post("/v1/link-sessions/exchange", response_model=ExchangeOut)
async def exchange_code(body: ExchangeIn, principal: CurrentPrincipal, services: ServicesDep) -> ExchangeOut:
    principal.require_operator()
    result = await exchange(services, body.code)
    if result is None:
        raise Problem(
            400,
            "invalid-code",
            "the code is unknown, expired (codes last 10 minutes) or already exchanged; "
            "start a new link session",
        )
    return ExchangeOut(
        connection_id=result.connection_id,
        connection_token=result.connection_token,
        webhook_secret=result.webhook_secret,
    )
