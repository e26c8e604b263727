"""Microsoft Dynamics 365 Business Central, through its API v2.0 with OAuth 2.0.

Two auth schemes: ``oauth``, where a user of the customer signs in through
the connect flow (authorization code grant with PKCE, delegated permission),
and ``client_credentials``, an app registration of the customer's own.

Reads vendors, items (as parts), locations and purchase orders with their
lines. Remote ids are the records' ``id`` GUIDs.
"""

from __future__ import annotations

from datetime import timedelta

from interlink.connectors import oauth
from interlink.connectors.base import (
    AuthScheme,
    ConnectorContext,
    CredentialField,
    EntityCapabilities,
    Integration,
    Limits,
)
from interlink.connectors.dynamics_bc import connector as _connector
from interlink.connectors.dynamics_bc.client import (
    DEFAULT_AUTHORIZE_URL,
    DEFAULT_LOGIN_URL,
    OAUTH_SCOPE,
    Tuning,
)

__all__ = ["INTEGRATION", "use_tuning"]

# Business Central stamps lastModifiedDateTime when the write commits; the
# lookback covers clock differences and writes that committed during a read.
LOOKBACK = timedelta(minutes=5)


_tuning = Tuning()


def use_tuning(tuning: Tuning | None) -> None:
    """Replace the tuning (retries, page size, bounds) of every connector built from now on.

    ``None`` restores the default. Tests use it to shorten retry delays.
    """
    global _tuning
    _tuning = tuning or Tuning()


def _build(context: ConnectorContext) -> _connector.BusinessCentralConnector:
    return _connector.BusinessCentralConnector(context, _tuning, LOOKBACK)


_TENANT = CredentialField("tenant_id", "Tenant ID", "The Microsoft Entra tenant id (a GUID) or domain.")
_ENVIRONMENT = CredentialField(
    "environment", "Environment", "The Business Central environment name, such as production."
)
_COMPANY = CredentialField(
    "company_id",
    "Company ID",
    "The company's id (a GUID); may stay empty when the environment has one company.",
    required=False,
)
_API_BASE_URL = CredentialField(
    "api_base_url",
    "API base URL",
    "Defaults to https://api.businesscentral.dynamics.com.",
    required=False,
)

INTEGRATION = Integration(
    name="dynamics_bc",
    label="Microsoft Dynamics 365 Business Central",
    description="Vendors, items, locations and purchase orders from Business Central's API v2.0.",
    auth_schemes=(
        AuthScheme(
            "oauth",
            "Sign in with Microsoft",
            (_TENANT, _ENVIRONMENT, _COMPANY, _API_BASE_URL, *oauth.flow_credential_fields()),
        ),
        AuthScheme(
            "client_credentials",
            "Microsoft Entra app registration (client credentials)",
            (
                _TENANT,
                _ENVIRONMENT,
                CredentialField(
                    "client_id", "Client ID", "The application (client) id of the app registration."
                ),
                CredentialField(
                    "client_secret", "Client secret", "A client secret of the app registration.", secret=True
                ),
                _COMPANY,
                _API_BASE_URL,
                CredentialField(
                    "token_url",
                    "Token URL",
                    "Defaults to https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token.",
                    required=False,
                ),
            ),
        ),
    ),
    entities=(
        EntityCapabilities("purchase_order"),
        EntityCapabilities("vendor"),
        EntityCapabilities("part"),
        EntityCapabilities("location"),
    ),
    build=_build,
    # Business Central online allows 100 simultaneous requests per user and
    # 6,000 requests in any five minutes.
    limits=Limits(max_concurrent_requests=5, requests_per_second=20.0),
    lookback=LOOKBACK,
    # Business Central records carry nothing that changes between fetches;
    # @odata.etag moves only when the record does.
    volatile_fields=(),
)

oauth.register_authorization_code(
    oauth.AuthorizationCodeSpec(
        integration="dynamics_bc",
        scheme="oauth",
        authorize_url=DEFAULT_AUTHORIZE_URL,
        token_url=DEFAULT_LOGIN_URL,
        scope=OAUTH_SCOPE,
    )
)
