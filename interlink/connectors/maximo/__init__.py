"""IBM Maximo through its REST API (OSLC JSON), with an API key.

Entities: work orders with their tasks (``mxapiwo`` with ``woactivity``), assets
(``mxapiasset``) and locations (``mxapilocations``). Remote ids are
``<siteid>/<key>`` (see ``mapping``); ``connector`` describes how changes are found.
"""

from __future__ import annotations

from interlink.connectors.base import AuthScheme, CredentialField, EntityCapabilities, Integration, Limits
from interlink.connectors.maximo.connector import SPECS, MaximoOptions, build_connector

__all__ = ["INTEGRATION", "MaximoOptions", "build_integration"]

CREDENTIAL_FIELDS = (
    CredentialField(
        "base_url",
        "Maximo URL",
        "The address of Maximo, such as https://maximo.example.com; /maximo/oslc is added when missing, "
        "and an address ending in /maximo/api is used as it is.",
    ),
    CredentialField(
        "api_key",
        "API key",
        "An API key of a Maximo user allowed to read MXAPIWO, MXAPIASSET and MXAPILOCATIONS.",
        secret=True,
    ),
)


def build_integration(options: MaximoOptions | None = None) -> Integration:
    """Declare the integration; ``options`` changes retries, page size and lookback."""
    chosen = options or MaximoOptions()
    return Integration(
        name="maximo",
        label="IBM Maximo",
        description="Work orders with tasks, assets and locations from IBM Maximo's REST API.",
        auth_schemes=(AuthScheme("api_key", "API key", CREDENTIAL_FIELDS),),
        entities=tuple(EntityCapabilities(entity) for entity in SPECS),
        build=build_connector(chosen),
        limits=Limits(max_concurrent_requests=4),
        lookback=chosen.lookback,
    )


INTEGRATION = build_integration()
