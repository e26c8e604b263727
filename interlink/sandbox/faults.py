"""Fault injection shared by the sandboxes.

A test arms faults through ``POST /_sandbox/faults`` with a JSON body such as
``{"kind": "status", "status": 429, "retry_after": "2", "count": 1}``. Each
armed fault fires on the next ``count`` matching requests, then disarms.

Kinds:

- ``status``: answer ``status`` (429, 500, 503...) with an optional ``Retry-After`` header;
- ``slow``: wait ``delay`` seconds before answering normally;
- ``malformed``: the sandbox's paging code answers a page that is not valid JSON;
- ``repeat_next``: the sandbox's paging code answers a next link equal to the current one.

``malformed`` and ``repeat_next`` depend on the vendor's paging format, so the
sandbox apps ask ``FaultPlan.take(kind)`` where they build a page. The others
are applied by ``FaultMiddleware`` before the request reaches the app.
``path_prefix`` limits a fault to requests whose path starts with it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

FAULT_KINDS = ("status", "slow", "malformed", "repeat_next")
ADMIN_PREFIX = "/_sandbox/"


@dataclass
class Fault:
    kind: str
    count: int = 1
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    path_prefix: str = ""


@dataclass
class FaultPlan:
    """The faults armed in one sandbox."""

    faults: list[Fault] = field(default_factory=list)

    def arm(self, fault: Fault) -> None:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; valid kinds: {', '.join(FAULT_KINDS)}")
        if fault.count < 1:
            raise ValueError(f"count must be at least 1, got {fault.count}")
        self.faults.append(fault)

    def take(self, kind: str, path: str = "") -> Fault | None:
        """Fire one armed fault of ``kind`` matching ``path``; return it, or ``None`` if none is armed."""
        for fault in self.faults:
            if fault.kind == kind and path.startswith(fault.path_prefix):
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.faults.clear()


class FaultMiddleware:
    """Applies ``status`` and ``slow`` faults before the request reaches the sandbox."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        slow = self.plan.take("slow", path)
        if slow is not None:
            await asyncio.sleep(slow.delay)
        failing = self.plan.take("status", path)
        if failing is not None:
            headers = {"Retry-After": failing.retry_after} if failing.retry_after else None
            body = {"error": {"code": str(failing.status), "message": "fault injected by the sandbox"}}
            response = JSONResponse(body, status_code=failing.status, headers=headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def fault_routes(plan: FaultPlan) -> list[Route]:
    """Admin routes to arm and clear faults: ``POST`` and ``DELETE /_sandbox/faults``."""

    async def arm(request: Request) -> Response:
        try:
            body: dict[str, Any] = json.loads(await request.body())
            plan.arm(Fault(**body))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"armed": len(plan.faults)}, status_code=201)

    async def clear(request: Request) -> Response:
        plan.clear()
        return Response(status_code=204)

    return [
        Route(f"{ADMIN_PREFIX}faults", arm, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}faults", clear, methods=["DELETE"]),
    ]
