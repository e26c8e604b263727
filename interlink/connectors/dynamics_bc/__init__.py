"""Microsoft Dynamics 365 Business Central, through its API v2.0 with OAuth 2.0 client credentials.

Reads vendors, items (as parts), locations and purchase orders with their
lines. Remote ids are the records' ``id`` GUIDs.
"""

from __future__ import annotations

from datetime import timedelta

from interlink.connectors.base import (
    AuthScheme,
    ConnectorContext,
    CredentialField,
    EntityCapabilities,
    Integration,
    Limits,
)
from interlink.connectors.dynamics_bc import connector as _connector
from interlink.connectors.dynamics_bc.client import Tuning

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


INTEGRATION = Integration(
    name="dynamics_bc",
    label="Microsoft Dynamics 365 Business Central",
    description="Vendors, items, locations and purchase orders from Business Central's API v2.0.",
    auth_schemes=(
        AuthScheme(
            "client_credentials",
            "Microsoft Entra app registration (client credentials)",
            (
                CredentialField(
                    "tenant_id", "Tenant ID", "The Microsoft Entra tenant id (a GUID) or domain."
                ),
                CredentialField(
                    "environment", "Environment", "The Business Central environment name, such as production."
                ),
                CredentialField(
                    "client_id", "Client ID", "The application (client) id of the app registration."
                ),
                CredentialField(
                    "client_secret", "Client secret", "A client secret of the app registration.", secret=True
                ),
                CredentialField(
                    "company_id",
                    "Company ID",
                    "The company's id (a GUID); may stay empty when the environment has one company.",
                    required=False,
                ),
                CredentialField(
                    "api_base_url",
                    "API base URL",
                    "Defaults to https://api.businesscentral.dynamics.com.",
                    required=False,
                ),
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
