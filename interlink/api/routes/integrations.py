"""``GET /v1/integrations``: what each integration needs and can do."""

from __future__ import annotations

from fastapi import APIRouter

from interlink.api.auth import CurrentPrincipal
from interlink.api.schemas import (
    AuthSchemeOut,
    CredentialFieldOut,
    EntityCapabilitiesOut,
    IntegrationOut,
    ListPage,
)
from interlink.connectors.base import Integration
from interlink.connectors.registry import integrations

router = APIRouter(tags=["integrations"])


def integration_out(integration: Integration) -> IntegrationOut:
    return IntegrationOut(
        name=integration.name,
        label=integration.label,
        description=integration.description,
        auth_schemes=[
            AuthSchemeOut(
                name=scheme.name,
                label=scheme.label,
                fields=[
                    CredentialFieldOut(
                        name=f.name, label=f.label, help=f.help, secret=f.secret, required=f.required
                    )
                    for f in scheme.fields
                ],
            )
            for scheme in integration.auth_schemes
        ],
        entities=[EntityCapabilitiesOut(**capabilities.__dict__) for capabilities in integration.entities],
    )


@router.get("/v1/integrations", response_model=ListPage[IntegrationOut])
async def list_integrations(principal: CurrentPrincipal) -> ListPage[IntegrationOut]:
    data = [integration_out(integration) for integration in integrations().values()]
    return ListPage(data=data, next_cursor="", has_more=False)
