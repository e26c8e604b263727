"""A stand-in for the vendor's web app: it receives the browser at the end of the connect flow."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route


@dataclass
class VendorApp:
    """Records the query of every request to ``/connected``."""

    asgi: Starlette
    received: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""

    @property
    def redirect_url(self) -> str:
        return f"{self.base_url}/connected?tab=integrations"


def vendor_app() -> VendorApp:
    received: list[dict[str, str]] = []

    async def connected(request: Request) -> HTMLResponse:
        received.append(dict(request.query_params))
        return HTMLResponse("<!doctype html><title>Vendor</title><h1>Back at the vendor</h1>")

    app = VendorApp(Starlette(routes=[Route("/connected", connected)]))
    app.received = received
    return app
