"""Business Central connections made with the authorization code grant, for the refresh tests."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from interlink.connections import create_connection
from interlink.connectors import oauth
from interlink.connectors.dynamics_bc.client import OAUTH_SCOPE
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.store.connections import get_connection, update_connection
from tests.connect.conftest import BusinessCentral
from tests.sandboxes.dynamics_bc.sign_in import sign_in, token_url


async def oauth_connection(runtime: Runtime, business_central: BusinessCentral) -> str:
    """Sign in at the sandbox, redeem the code, and store a connection with the tokens."""
    credentials = business_central.sandbox.credentials
    signed_in = sign_in(business_central.base_url)
    endpoint = token_url(business_central.base_url, credentials)
    async with httpx.AsyncClient() as http:
        tokens = await oauth.redeem_code(
            http,
            endpoint,
            oauth.OAuthClient(credentials.client_id, credentials.client_secret),
            code=signed_in.code,
            redirect_uri=signed_in.redirect_uri,
            code_verifier=signed_in.pkce.verifier,
            scope=OAUTH_SCOPE,
            now=datetime.now(UTC),
        )
    created = await create_connection(
        runtime.db,
        runtime.credentials,
        runtime.http_factory,
        integration_name="dynamics_bc",
        end_user={"id": "customer-3"},
        credentials={
            "tenant_id": credentials.tenant_id,
            "environment": credentials.environment,
            "api_base_url": business_central.base_url,
            **tokens.credentials(),
            oauth.CLIENT_ID: credentials.client_id,
            oauth.CLIENT_SECRET: credentials.client_secret,
            oauth.TOKEN_URL: endpoint,
        },
        auth_scheme="oauth",
        settings=ConnectionSettings(),
    )
    return created.connection.id


async def stored_credentials(runtime: Runtime, connection_id: str) -> dict[str, str]:
    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
    assert connection is not None
    return runtime.credentials.decrypt(connection.credentials)


async def set_token_expiry(runtime: Runtime, connection_id: str, expires_at: datetime) -> None:
    """Change when the stored access token expires, as if time had passed."""
    credentials = await stored_credentials(runtime, connection_id)
    credentials[oauth.EXPIRES_AT] = expires_at.isoformat()
    async with runtime.db.write() as db:
        await update_connection(db, connection_id, credentials=runtime.credentials.encrypt(credentials))
