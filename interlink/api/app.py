"""The FastAPI application and what runs beside it in one process."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from interlink import __version__
from interlink.api.problems import install_problem_handlers
from interlink.api.routes import (
    connections,
    events,
    integrations,
    link_sessions,
    meta,
    oauth_clients,
    records,
    syncs,
    webhooks,
    writes,
)
from interlink.api.services import Services
from interlink.connect import router as connect_pages

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


def create_app(
    services: Services, *, on_startup: Hook | None = None, on_shutdown: Hook | None = None
) -> FastAPI:
    """Build the API around ``services``; ``on_startup``/``on_shutdown`` start and stop background work."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if on_startup is not None:
            await on_startup()
        try:
            yield
        finally:
            if on_shutdown is not None:
                await on_shutdown()

    app = FastAPI(
        title="Interlink",
        version=__version__,
        summary="One API for the ERP, maintenance and chat systems of industrial companies.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_problem_handlers(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.headers.get("X-Request-ID", "")
        value = given if 0 < len(given) <= 200 and given.isprintable() else uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-ID"] = value
        return response

    for module in (meta, integrations, connections, syncs, webhooks, events, records, writes):
        app.include_router(module.router)
    app.include_router(link_sessions.router)
    app.include_router(oauth_clients.router)
    app.include_router(connect_pages)
    return app
