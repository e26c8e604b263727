"""Oracle NetSuite, through its REST web services with Token-Based Authentication.

Reads purchase orders with their item lines, vendors, inventory items (as
parts) and locations. Remote ids are NetSuite internal ids; a purchase order
line's is ``{order id}/{line number}``.
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
from interlink.connectors.netsuite.client import Tuning
from interlink.connectors.netsuite.connector import NetSuiteConnector

__all__ = ["INTEGRATION", "use_tuning"]

# lastModifiedDate has minute precision; the lookback covers that, clock
# differences and saves that committed during a read.
LOOKBACK = timedelta(minutes=10)
_tuning = Tuning()


def use_tuning(tuning: Tuning | None) -> None:
    """Replace the tuning (retries, concurrency, page size) of every connector built from now on.

    ``None`` restores the default. Tests use it to shorten retry delays.
    """
    global _tuning
    _tuning = tuning or Tuning()


def _build(context: ConnectorContext) -> NetSuiteConnector:
    return NetSuiteConnector(context, _tuning, LOOKBACK)


INTEGRATION = Integration(
    name="netsuite",
    label="Oracle NetSuite",
    description="Purchase orders, vendors, inventory items and locations from NetSuite's REST web services.",
    auth_schemes=(
        AuthScheme(
            "token_based_authentication",
            "Token-Based Authentication (TBA)",
            (
                CredentialField(
                    "account_id", "Account ID", "The account id, such as 1234567 or 1234567_SB1."
                ),
                CredentialField("consumer_key", "Consumer key", "From the integration record."),
                CredentialField(
                    "consumer_secret", "Consumer secret", "From the integration record.", secret=True
                ),
                CredentialField("token_id", "Token ID", "From the access token."),
                CredentialField("token_secret", "Token secret", "From the access token.", secret=True),
                CredentialField(
                    "base_url",
                    "Base URL",
                    "Defaults to https://{account id}.suitetalk.api.netsuite.com (lower case, _ as -).",
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
    # The account's concurrency limit (15 on a shared tier with one SuiteCloud
    # Plus license) is shared with every other integration of the account.
    limits=Limits(max_concurrent_requests=4),
    lookback=LOOKBACK,
    # Each record's top-level links repeat the request URL it was fetched with.
    volatile_fields=("links",),
)
