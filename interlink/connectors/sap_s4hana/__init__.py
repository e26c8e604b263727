"""SAP S/4HANA through its OData v2 APIs, with user and password (basic authentication).

Entities: purchase orders with items (``API_PURCHASEORDER_PROCESS_SRV``), work
orders from maintenance orders with operations (``API_MAINTENANCEORDER``),
vendors from business partners that are suppliers (``API_BUSINESS_PARTNER``),
parts from products (``API_PRODUCT_SRV``), assets from equipment
(``API_EQUIPMENT``) and locations from functional locations
(``API_FUNCTIONALLOCATION``). ``connector`` describes how changes are found.
"""

from __future__ import annotations

from interlink.connectors.base import AuthScheme, CredentialField, EntityCapabilities, Integration, Limits
from interlink.connectors.sap_s4hana.connector import SPECS, SapOptions, build_connector

__all__ = ["INTEGRATION", "SapOptions", "build_integration"]

CREDENTIAL_FIELDS = (
    CredentialField(
        "base_url",
        "System URL",
        "The address of the SAP system, such as https://my-s4.example.com; "
        "the OData path /sap/opu/odata/sap is added when it is missing.",
    ),
    CredentialField("username", "User", "A communication user allowed to read the APIs listed above."),
    CredentialField("password", "Password", "The user's password.", secret=True),
    CredentialField(
        "sap_client",
        "Client",
        "The three-digit SAP client (sap-client), such as 100; leave empty for the system's default client.",
        required=False,
    ),
)


def build_integration(options: SapOptions | None = None) -> Integration:
    """Declare the integration; ``options`` changes retries, page size, clock and sweep interval."""
    chosen = options or SapOptions()
    return Integration(
        name="sap_s4hana",
        label="SAP S/4HANA",
        description="Purchase orders, maintenance orders and master data from SAP S/4HANA's OData APIs.",
        auth_schemes=(AuthScheme("basic", "User and password", CREDENTIAL_FIELDS),),
        entities=tuple(EntityCapabilities(entity) for entity in SPECS),
        build=build_connector(chosen),
        limits=Limits(max_concurrent_requests=4),
        lookback=chosen.lookback,
        volatile_fields=("__metadata",),
    )


INTEGRATION = build_integration()
