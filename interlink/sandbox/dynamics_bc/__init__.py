"""A sandbox of the Microsoft Dynamics 365 Business Central API v2.0.

Built from Microsoft's public documentation, opened while writing it:

- API endpoint structure, ``https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment}/api/v2.0``
  (learn.microsoft.com, dynamics365/business-central/dev-itpro/webservices/api-endpoint-structure);
- the purchaseOrder, purchaseOrderLine and location resource types and their GET, create and update
  pages (learn.microsoft.com, dev-itpro/api-reference/v2.0/resources/dynamics_purchaseorder,
  dynamics_purchaseorderline, dynamics_location, api/dynamics_purchaseorder_get,
  api/dynamics_location_update);
- server-driven paging, at most 20,000 entities per page, overridable per request with
  ``Prefer: odata.maxpagesize`` (dev-itpro/webservices/server-driven-paging-in-odata-web-services);
- API limits: HTTP 429 past the request rate (learn.microsoft.com training module "Work with API limits");
- the Microsoft identity platform client credentials flow, ``/{tenant}/oauth2/v2.0/token``
  (learn.microsoft.com, entra/identity-platform/v2-oauth2-client-creds-grant-flow);
- the Microsoft identity platform authorization code flow with PKCE and refresh tokens
  (learn.microsoft.com, entra/identity-platform/v2-oauth2-auth-code-flow; see ``identity.py``).

What it serves:

- ``POST /{tenant}/oauth2/v2.0/token``: the client credentials grant with scope
  ``https://api.businesscentral.dynamics.com/.default``, the authorization code grant (PKCE
  verified) and the refresh token grant. Refresh tokens rotate, so each works once. Errors use
  the identity platform's ``error`` / ``error_description`` / ``error_codes`` body:
  ``invalid_client`` for a wrong secret, ``invalid_grant`` for a used, expired or revoked code
  or refresh token;
- ``GET /{tenant}/oauth2/v2.0/authorize``: a consent page whose "Allow" button (a form POST to
  the same path) redirects to ``redirect_uri`` with ``code`` and ``state``, and whose "Cancel"
  button redirects with ``error=access_denied``;
- ``GET /v2.0/{tenant}/{environment}/api/v2.0/companies`` and, below ``companies({id})/``,
  ``vendors``, ``items``, ``locations``, ``purchaseOrders`` (``$expand=purchaseOrderLines``) and
  ``purchaseOrderLines``, single records as ``{set}({id})``, and ``purchaseOrders({id})/purchaseOrderLines``;
  OData v4 ``value`` envelopes with ``@odata.nextLink`` (``$skiptoken``), ``$filter``, ``$select``,
  ``$top`` and ``@odata.etag`` on every record;
- ``PATCH`` of a record with ``If-Match`` (412 ``Request_EntityChanged`` on a stale ETag);
- 401 ``Authentication_InvalidCredentials`` for a missing, unknown or expired bearer token, and 429
  with ``Retry-After`` when ``rate_limit`` is set and exceeded.

The trap it models: changing a purchase order line does not move its order's
``lastModifiedDateTime`` (see ``data.py``). Microsoft's pages do not say either
way, and the line resource has no timestamp of its own, so the sandbox takes
the case a client must survive.

Admin endpoints (not part of the vendor API):

- ``POST /_sandbox/records/{set}``: add a record (JSON fields override the generated ones);
  a purchase order line needs ``documentId``;
- ``PATCH /_sandbox/records/{set}/{id}``: change fields and stamp ``lastModifiedDateTime``
  (for ``purchaseOrderLines``, only the line changes);
- ``DELETE /_sandbox/records/{set}/{id}``: delete a record (an order with its lines);
- ``POST /_sandbox/credentials/rotate``: new client secret, returned as ``{"client_secret": ...}``;
  the old secret and every issued token stop working at once;
- ``POST /_sandbox/tokens/expire``: expire every issued access token, the credentials and refresh
  tokens stay valid;
- ``GET /_sandbox/oauth/stats``: ``{"token_requests": {grant_type: count}}``, every request to the
  token endpoint counted by its grant type;
- ``POST /_sandbox/oauth/revoke``: revoke every refresh token, as removing the app's consent would;
- ``POST`` / ``DELETE /_sandbox/faults``: fault injection (``interlink.sandbox.faults``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette

from interlink.sandbox.dynamics_bc.app import RateLimit, Sandbox, SandboxCredentials, build_app
from interlink.sandbox.dynamics_bc.data import seed
from interlink.sandbox.dynamics_bc.identity import IdentityProvider
from interlink.sandbox.faults import FaultPlan

__all__ = ["SandboxCredentials", "create_app", "demo_credentials"]

# Business Central online serves at most 20,000 entities per page.
DEFAULT_PAGE_SIZE = 20_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    *,
    size: int = 50,
    seed: int = 0,
    credentials: SandboxCredentials | None = None,
    clock: Callable[[], datetime] = _utcnow,
    epoch: datetime | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    token_lifetime: timedelta = timedelta(seconds=3599),
    rate_limit: tuple[int, float] | None = None,
    redirect_uris: list[str] | None = None,
) -> Starlette:
    """Build the sandbox app with ``size`` seeded purchase orders.

    Seeded change times lie up to 60 days before ``epoch`` (default: the
    start of the current UTC day by ``clock``), so a fixed ``epoch`` and
    ``seed`` always give the same records. ``rate_limit`` is
    ``(requests, window_seconds)``. ``redirect_uris`` are the redirect URIs
    of the app registration; by default any http or https URI is accepted.
    """
    now = clock()
    start = epoch if epoch is not None else now.replace(hour=0, minute=0, second=0, microsecond=0)
    sandbox = Sandbox(
        data=_seed(size=size, seed_value=seed, clock=clock, epoch=start),
        credentials=credentials or SandboxCredentials(),
        plan=FaultPlan(),
        page_size=page_size,
        token_lifetime=token_lifetime,
        rate_limit=RateLimit(*rate_limit) if rate_limit else None,
        identity=IdentityProvider(redirect_uris=list(redirect_uris or [])),
    )
    return build_app(sandbox)


_seed = seed


def demo_credentials(base_url: str) -> dict[str, str]:
    """Return the credential fields of a connection to a sandbox served at ``base_url``."""
    defaults = SandboxCredentials()
    base = base_url.rstrip("/")
    return {
        "tenant_id": defaults.tenant_id,
        "environment": defaults.environment,
        "client_id": defaults.client_id,
        "client_secret": defaults.client_secret,
        "api_base_url": base,
        "token_url": f"{base}/{defaults.tenant_id}/oauth2/v2.0/token",
    }
