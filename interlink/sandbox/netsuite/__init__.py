"""A sandbox of Oracle NetSuite's REST web services: record API, SuiteQL and Token-Based Authentication.

Built from Oracle's public NetSuite documentation and real payloads, opened while writing it:

- Collection paging: ``items`` with ids and ``links``, ``hasMore``, ``offset``, ``count``,
  ``totalResults``, 1000 results per page and 100,000 results at most without SuiteAnalytics
  Connect (docs.oracle.com, ns-online-help section_156414087576, "Collection Paging");
- record collection filtering with ``q`` and its operators per field type, dates included
  (section_1545222128, "Record Collection Filtering");
- SuiteQL through ``POST /services/rest/query/v1/suiteql`` with ``Prefer: transient`` and the
  100,000-result cap (section_157909186990 and section_158394344595);
- Token-Based Authentication headers (section_1534941295, "The Authorization Headers") and
  RFC 5849 for the signature base string;
- concurrency governance per account (section subsect_1559222360);
- a purchase order fetched with ``?expandSubResources=true`` (public repository
  seunsodimu/laguna_partner, ``debug_vendor_access.php``), for the record's field names and its
  ``item`` sublist; and account-format dates in ``q`` such as ``"8/4/2026"`` in public connector
  code (NangoHQ/integration-templates, ``integrations/netsuite-tba/helpers/format-date.ts``).

What it serves, below ``/services/rest/``:

- ``GET record/v1/{type}`` for ``purchaseOrder``, ``vendor``, ``inventoryItem`` and ``location``,
  with ``limit`` (at most 1000), ``offset`` (a multiple of ``limit``, results capped at 100,000)
  and ``q`` (see ``queries.py``);
- ``GET record/v1/{type}/{id}``, with the purchase order's ``item`` sublist expanded by
  ``?expandSubResources=true``;
- ``POST query/v1/suiteql`` with ``{"q": "SELECT ..."}`` over the tables ``transaction``
  (``type = 'PurchOrd'``), ``vendor``, ``item`` and ``location``.

Every request must carry a valid TBA header: realm equal to the account id, HMAC-SHA256, a
timestamp within five minutes and a nonce not used before; otherwise 401 ``INVALID_LOGIN``.
Requests beyond ``concurrency_limit`` in flight get 429 ``CONCURRENCY_LIMIT_EXCEEDED``.

The trap it models: date filters compare whole days in the account's time zone
(``America/Los_Angeles`` by default), and record times have minute precision.

Admin endpoints (not part of the vendor API):

- ``POST /_sandbox/records/{type}``: add a record (JSON fields override the generated ones);
- ``PATCH /_sandbox/records/{type}/{id}``: change top-level fields, or purchase order lines with
  ``{"lines": {"1": {"quantity": 5}}}``; either stamps ``lastModifiedDate``;
- ``DELETE /_sandbox/records/{type}/{id}``: delete a record;
- ``POST /_sandbox/credentials/rotate``: new token id and secret, returned as JSON; the old
  token stops working at once;
- ``POST`` / ``DELETE /_sandbox/faults``: fault injection (``interlink.sandbox.faults``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from starlette.applications import Starlette

from interlink.sandbox.faults import FaultPlan
from interlink.sandbox.netsuite.app import Sandbox, build_app
from interlink.sandbox.netsuite.data import seed as _seed
from interlink.sandbox.netsuite.tba import TokenVerifier

__all__ = ["SandboxCredentials", "create_app", "demo_credentials"]


@dataclass(frozen=True)
class SandboxCredentials:
    """The account id and the integration and token secrets the sandbox accepts."""

    account_id: str = "1234567_SB1"
    consumer_key: str = "sandbox-consumer-key"
    consumer_secret: str = "sandbox-consumer-secret"  # noqa: S105  (the published sandbox default)
    token_id: str = "sandbox-token-id"  # noqa: S105  (the published sandbox default)
    token_secret: str = "sandbox-token-secret"  # noqa: S105  (the published sandbox default)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    *,
    size: int = 50,
    seed: int = 0,
    credentials: SandboxCredentials | None = None,
    clock: Callable[[], datetime] = _utcnow,
    epoch: datetime | None = None,
    time_zone: str = "America/Los_Angeles",
    concurrency_limit: int = 15,
) -> Starlette:
    """Build the sandbox app with ``size`` seeded purchase orders.

    Seeded change times lie up to 60 days before ``epoch`` (default: the start
    of the current UTC day by ``clock``). The default ``concurrency_limit`` is
    that of a shared-tier account with one SuiteCloud Plus license (5 + 10).
    """
    secrets = credentials or SandboxCredentials()
    start = epoch if epoch is not None else clock().replace(hour=0, minute=0, second=0, microsecond=0)
    sandbox = Sandbox(
        data=_seed(size=size, seed_value=seed, clock=clock, epoch=start),
        verifier=TokenVerifier(
            secrets.account_id,
            secrets.consumer_key,
            secrets.consumer_secret,
            secrets.token_id,
            secrets.token_secret,
        ),
        plan=FaultPlan(),
        zone=ZoneInfo(time_zone),
    )
    return build_app(sandbox, concurrency_limit)


def demo_credentials(base_url: str) -> dict[str, str]:
    """Return the credential fields of a connection to a sandbox served at ``base_url``."""
    defaults = SandboxCredentials()
    return {
        "account_id": defaults.account_id,
        "consumer_key": defaults.consumer_key,
        "consumer_secret": defaults.consumer_secret,
        "token_id": defaults.token_id,
        "token_secret": defaults.token_secret,
        "base_url": base_url.rstrip("/"),
    }
