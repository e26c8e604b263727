"""A simulator of SAP S/4HANA's OData v2 APIs for purchase orders, maintenance orders and master data.

Services, under ``/sap/opu/odata/sap/``:

- ``API_PURCHASEORDER_PROCESS_SRV``: ``A_PurchaseOrder`` with ``to_PurchaseOrderItem``,
  ``A_PurchaseOrderItem``;
- ``API_MAINTENANCEORDER``: ``MaintenanceOrder`` with ``to_MaintenanceOrderOperation``,
  ``MaintenanceOrderOperation``;
- ``API_BUSINESS_PARTNER``: ``A_BusinessPartner`` with ``to_BusinessPartnerAddress``
  (and its ``to_EmailAddress``, ``to_PhoneNumber``);
- ``API_PRODUCT_SRV``: ``A_Product`` with ``to_Description``;
- ``API_EQUIPMENT``: ``Equipment``, keyed by ``Equipment`` and ``ValidityEndDate``;
- ``API_FUNCTIONALLOCATION``: ``FunctionalLocation``.

Protocol behaviour, as SAP Gateway shows it:

- the verbose JSON envelope ``{"d": {"results": [...], "__next": ...}}`` (``{"d": {...}}``
  for one entity), ``__metadata`` on every entity and ``__deferred`` navigation links;
- server-driven paging: at most ``max_page_size`` entities per response, then a
  ``__next`` link carrying ``$skiptoken`` (an offset into the result);
- ``Edm.DateTime`` as ``/Date(ms)/``, ``Edm.DateTimeOffset`` as ``/Date(ms+0000)/``,
  ``Edm.Time`` as ``PT15H51M04S``, decimals as strings, empty character fields as ``""``;
- ``$filter`` (see ``query``): a literal of the wrong type for its property, such
  as ``datetime'...'`` against the ``Edm.DateTimeOffset`` ``LastChangeDateTime``,
  answers 400; ``$orderby``, ``$top``, ``$skip``, ``$select``, ``$expand``,
  ``$inlinecount=allpages`` and ``/$count``;
- basic authentication for one user in one client: ``sap-client`` may name the
  client and defaults to it, and another client answers 401;
- writes (``POST`` with deep insert, ``PATCH``/``MERGE``/``PUT``, ``DELETE``) need a CSRF
  token: fetch it with ``x-csrf-token: Fetch`` on a GET, keep the session cookie,
  and send the token back; without one the answer is 403 with ``x-csrf-token: Required``.

Change stamps, with a resolution of one second:

- purchase orders, maintenance orders, equipment, functional locations and products
  carry ``LastChangeDateTime`` (``Edm.DateTimeOffset``, UTC);
- business partners carry ``LastChangeDate`` and ``LastChangeTime`` in the system's
  local time zone (``system_zone``), both null until the first change;
- an edit of a purchase order item or a maintenance order operation does NOT move
  its header's ``LastChangeDateTime``. SAP's documentation of these APIs does not
  say whether such an edit moves it; the sandbox models the trap that a connector
  reading only header stamps would miss item edits. Address, e-mail, phone and
  product description edits do move their parent's stamps.

Admin routes (not part of SAP's API, no authentication):

- ``GET /_sandbox/records/{entity_set}``: every record, values as plain JSON;
- ``POST /_sandbox/records/{entity_set}`` ``{"values": {...}}``: add a record (missing
  numeric keys are numbered after the highest);
- ``PATCH /_sandbox/records/{entity_set}`` ``{"key": {...}, "values": {...}}``: change one;
- ``DELETE /_sandbox/records/{entity_set}`` ``{"key": {...}}``: delete one and its items;
- ``POST /_sandbox/credentials/rotate`` ``{"password": "..."}`` (optional): replace the
  password; the old one and every CSRF session stop working at once;
- ``POST`` and ``DELETE /_sandbox/faults``: see ``interlink.sandbox.faults``.

Values in admin bodies are plain JSON: decimals as strings, times as ISO 8601.

Sources opened to build this sandbox:

- SAP's OpenAPI documents of ``API_PURCHASEORDER_PROCESS_SRV``, ``API_MAINTENANCEORDER``,
  ``API_BUSINESS_PARTNER``, ``API_PRODUCT_SRV``, ``API_EQUIPMENT`` and
  ``API_FUNCTIONALLOCATION`` (SAP API Business Hub exports, as kept in the public
  ``latonaio/sap-api-integrations-*`` repositories with sample answers of SAP's
  API sandbox): entity sets, keys, property types, ``/Date(...)/`` examples;
- SAP Cloud SDK for JavaScript, ``@sap-cloud-sdk/odata-v2`` payload value converter:
  the ``/Date(ms+mmmm)/`` offset in minutes and the ``PT..H..M..S`` time format.

What the sandbox leaves out is listed in ``docs/decisions/sandbox-fidelity.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from starlette.applications import Starlette

from interlink.sandbox.faults import FaultPlan
from interlink.sandbox.sap_s4hana.app import DEFAULT_CREDENTIALS, SandboxCredentials, SandboxState, build_app
from interlink.sandbox.sap_s4hana.data import seed_data

__all__ = ["DEFAULT_CREDENTIALS", "SandboxCredentials", "create_app", "demo_credentials"]

DEFAULT_SYSTEM_ZONE = "Europe/Berlin"


def create_app(
    *,
    size: int = 50,
    seed: int = 0,
    credentials: SandboxCredentials | None = None,
    clock: Callable[[], datetime] | None = None,
    system_zone: tzinfo | None = None,
    max_page_size: int = 100,
) -> Starlette:
    """Build a sandbox with ``size`` purchase orders and ``size`` maintenance orders.

    Seeded change times lie before the start of the day ``clock`` returns; every
    later change is stamped with ``clock``. ``system_zone`` is the SAP system's
    time zone, in which business partner change dates are kept.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if max_page_size < 1:
        raise ValueError(f"max_page_size must be at least 1, got {max_page_size}")
    state = SandboxState(
        data=seed_data(
            size=size,
            seed=seed,
            clock=clock or (lambda: datetime.now(UTC)),
            system_zone=system_zone or ZoneInfo(DEFAULT_SYSTEM_ZONE),
        ),
        credentials=credentials or DEFAULT_CREDENTIALS,
        plan=FaultPlan(),
        max_page_size=max_page_size,
    )
    return build_app(state)


def demo_credentials(base_url: str) -> dict[str, str]:
    """Return the credential fields of a connection to a sandbox served at ``base_url``."""
    return {
        "base_url": base_url,
        "username": DEFAULT_CREDENTIALS.username,
        "password": DEFAULT_CREDENTIALS.password,
        "sap_client": DEFAULT_CREDENTIALS.sap_client,
    }
