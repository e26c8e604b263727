"""A simulator of IBM Maximo's REST API (OSLC JSON) for work orders, assets and locations.

Object structures, under ``/maximo/oslc/os/``:

- ``mxapiwo``: work orders (``WORKORDER``) with their tasks inlined as ``woactivity``.
  Tasks are work order rows too (``istask`` true, ``woclass`` ``ACTIVITY``), so a
  collection request without ``istask=0`` in its where clause returns them as
  members as well;
- ``mxapiasset``: assets;
- ``mxapilocations``: locations with their ``lochierarchy`` (the ``PRIMARY`` system).

``GET /maximo/oslc/whoami`` returns the API key's user.

Protocol behaviour, as IBM's REST API guide describes it:

- authentication by an API key in the ``apikey`` header (or query parameter); a
  missing or wrong key gets 401 with Maximo's ``{"Error": {...}}`` body;
- ``lean=1`` for plain JSON; without it, attributes are namespaced (``spi:``,
  ``rdfs:member``, ``oslc:responseInfo``);
- ``oslc.select`` (``a,b,woactivity{c,d}`` or ``*``). Without it a member is only
  its ``href``. Null attributes are left out unless ``_dropnulls=0``. ``status``
  comes with ``status_description``, and with ``status_maxvalue`` under
  ``internalvalues=1``;
- ``oslc.where`` (see ``query``), ``opmodeor=1``, ``oslc.orderBy`` (``+attr``/``-attr``);
- paging by ``oslc.pageSize`` and ``pageno``, with ``responseInfo.nextPage.href``,
  ``previousPage``, ``pagenum``, and ``totalCount``/``totalPages`` under
  ``collectioncount=1``. Without ``oslc.pageSize`` the sandbox pages at
  ``auto_page_size``, and a page size above ``max_page_size`` (Maximo's
  ``mxe.oslc.maxpagesize``) gets 400;
- every member carries ``href`` (``.../os/mxapiwo/_<base64 of key/siteid>``) and
  ``_rowstamp``, a string that grows with every change;
- times are ISO 8601 in the server's time zone (``server_zone``), to the second;
  decimal attributes are JSON numbers.

Change stamps: ``changedate`` moves on the row that changed, and only there. A
task edit leaves its work order's ``changedate`` as it was, because the task is a
row of its own.

Admin routes (not part of Maximo's API, no authentication):

- ``GET /_sandbox/records/{structure}``: every row of the structure's table;
- ``POST /_sandbox/records/{structure}`` ``{"values": {...}}``: add a row (a task is a
  ``mxapiwo`` row with ``istask`` and ``parent``; a location takes ``parent``);
- ``PATCH /_sandbox/records/{structure}`` ``{"key": {...}, "values": {...}}``: change one;
- ``DELETE /_sandbox/records/{structure}`` ``{"key": {...}}``: delete one;
- ``POST /_sandbox/credentials/rotate`` ``{"api_key": "..."}`` (optional): replace the
  API key; the old one stops working at once;
- ``POST`` and ``DELETE /_sandbox/faults``: see ``interlink.sandbox.faults``.

Values in admin bodies are plain JSON; times are ISO 8601, read in the server's
time zone when they have no offset.

Sources opened to build this sandbox:

- IBM Maximo REST API Guide (ibm-maximo-dev.github.io/maximo-restapi-documentation):
  the pages on API keys, selecting, filtering, sorting and paging, and child objects;
- payload samples of ``mxapiasset``, ``mxapilocations`` and ``mxapiwodetail``
  ``woactivity`` members in the test data of IBM's Maximo mobile applications
  (``href``, ``_rowstamp`` as a string, ``status_description``, ``status_maxvalue``);
- Maximo error bodies ``{"Error": {"reasonCode", "message", "statusCode", "extendedError"}}``
  as public client code handles them. The sandbox's own reason codes, other than
  BMXAA7901E for a failed login, are illustrative.

What the sandbox leaves out is listed in ``docs/decisions/sandbox-fidelity.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from starlette.applications import Starlette

from interlink.sandbox.faults import FaultPlan
from interlink.sandbox.maximo.app import DEFAULT_CREDENTIALS, SandboxCredentials, SandboxState, build_app
from interlink.sandbox.maximo.data import seed_data

__all__ = ["DEFAULT_CREDENTIALS", "SandboxCredentials", "create_app", "demo_credentials"]

DEFAULT_SERVER_ZONE = "America/New_York"


def create_app(
    *,
    size: int = 50,
    seed: int = 0,
    credentials: SandboxCredentials | None = None,
    clock: Callable[[], datetime] | None = None,
    server_zone: tzinfo | None = None,
    max_page_size: int = 1000,
    auto_page_size: int | None = None,
) -> Starlette:
    """Build a sandbox with ``size`` work orders, their tasks, and the assets and locations they use.

    Seeded change times lie before the start of the day ``clock`` returns;
    every later change is stamped with ``clock``. ``auto_page_size`` defaults
    to ``max_page_size``.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    auto_page_size = auto_page_size or max_page_size
    if not 1 <= auto_page_size <= max_page_size:
        raise ValueError(f"auto_page_size must be between 1 and max_page_size ({max_page_size})")
    state = SandboxState(
        data=seed_data(size=size, seed=seed, clock=clock or (lambda: datetime.now(UTC))),
        credentials=credentials or DEFAULT_CREDENTIALS,
        plan=FaultPlan(),
        server_zone=server_zone or ZoneInfo(DEFAULT_SERVER_ZONE),
        max_page_size=max_page_size,
        auto_page_size=auto_page_size,
    )
    return build_app(state)


def demo_credentials(base_url: str) -> dict[str, str]:
    """Return the credential fields of a connection to a sandbox served at ``base_url``."""
    return {"base_url": base_url, "api_key": DEFAULT_CREDENTIALS.api_key}
