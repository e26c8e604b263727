"""The Maximo sandbox's Starlette app: OSLC JSON routes, API key authentication, admin routes."""

from __future__ import annotations

import base64
import json
import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from interlink.sandbox.faults import ADMIN_PREFIX, FaultMiddleware, FaultPlan, fault_routes
from interlink.sandbox.maximo.data import (
    LOCHIERARCHY_ATTRIBUTES,
    OBJECT_STRUCTURES,
    MaximoData,
    ObjectStructure,
    coerce_values,
)
from interlink.sandbox.maximo.query import (
    Selection,
    WhereError,
    parse_order,
    parse_select,
    parse_where,
    sort_rows,
)

logger = logging.getLogger(__name__)

OSLC_ROOT = "/maximo/oslc"


@dataclass(frozen=True)
class SandboxCredentials:
    """The API key the sandbox accepts, and the user it belongs to."""

    api_key: str
    user: str = "MXINTADM"


# The demo key is public on purpose: it only opens the sandbox's generated data.
DEFAULT_CREDENTIALS = SandboxCredentials(api_key="sandbox-apikey-0000000000000000")


@dataclass
class SandboxState:
    """Mutable state of one running sandbox."""

    data: MaximoData
    credentials: SandboxCredentials
    plan: FaultPlan
    server_zone: tzinfo
    max_page_size: int
    auto_page_size: int


def build_app(state: SandboxState) -> Starlette:
    routes = [
        Route(f"{OSLC_ROOT}/whoami", _whoami(state), methods=["GET"]),
        Route(f"{OSLC_ROOT}/os/{{structure}}", _collection(state), methods=["GET"]),
        Route(f"{OSLC_ROOT}/os/{{structure}}/{{rest_id}}", _member(state), methods=["GET"]),
        *_admin_routes(state),
        *fault_routes(state.plan),
    ]
    return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, plan=state.plan)])


def error_response(status: int, reason: str, message: str) -> JSONResponse:
    """Return Maximo's error body: ``{"Error": {"statusCode", "reasonCode", "message", ...}}``."""
    body = {
        "Error": {
            "extendedError": {"moreInfo": {"href": f"oslc/error/messages/{reason}"}},
            "reasonCode": reason,
            "message": message,
            "statusCode": str(status),
        }
    }
    return JSONResponse(body, status_code=status)


def _authenticate(state: SandboxState, request: Request) -> Response | None:
    given = request.headers.get("apikey") or request.query_params.get("apikey") or ""
    if given and secrets.compare_digest(given, state.credentials.api_key):
        return None
    return error_response(
        401, "BMXAA7901E", "BMXAA7901E - You cannot log in at this time. Contact the system administrator."
    )


def _whoami(state: SandboxState) -> Any:
    async def handle(request: Request) -> Response:
        failure = _authenticate(state, request)
        if failure is not None:
            return failure
        user = state.credentials.user
        return JSONResponse(
            {"userid": user, "personid": user, "displayName": "Integration Admin", "insertSite": "BEDFORD"}
        )

    return handle


def _structure(request: Request) -> ObjectStructure | None:
    return OBJECT_STRUCTURES.get(request.path_params["structure"].lower())


def _collection(state: SandboxState) -> Any:
    async def handle(request: Request) -> Response:
        failure = _authenticate(state, request)
        if failure is not None:
            return failure
        structure = _structure(request)
        if structure is None:
            name = request.path_params["structure"]
            return error_response(
                404, "BMXAA8727E", f"BMXAA8727E - The object structure {name} was not found."
            )
        try:
            return _page(state, request, structure)
        except WhereError as exc:
            return error_response(400, str(exc).split(" ", 1)[0], str(exc))

    return handle


def _page(state: SandboxState, request: Request, structure: ObjectStructure) -> Response:
    params = request.query_params
    rows = list(state.data.rows(structure.table))
    if "oslc.where" in params:
        any_term = params.get("opmodeor") == "1"
        predicate = parse_where(
            params["oslc.where"], structure, state.data, state.server_zone, any_term=any_term
        )
        rows = [row for row in rows if predicate(row)]
    if "oslc.orderBy" in params:
        rows = sort_rows(rows, parse_order(params["oslc.orderBy"], structure))
    page_size = _page_size(state, params)
    page_number = _positive(params.get("pageno", "1"), "pageno")
    total_pages = max(1, math.ceil(len(rows) / page_size))
    page = rows[(page_number - 1) * page_size : page_number * page_size]

    path = request.url.path
    if state.plan.take("malformed", path) is not None:
        return Response(b'{"member": [{"href": ', media_type="application/json")
    # Without oslc.select a collection lists only each member's href, as Maximo does.
    selection = parse_select(params["oslc.select"]) if "oslc.select" in params else {}
    renderer = _Renderer(state, request, structure, selection)
    info: dict[str, Any] = {"href": str(request.url), "pagenum": page_number}
    if state.plan.take("repeat_next", path) is not None:
        info["nextPage"] = {"href": str(request.url)}
    elif page_number < total_pages:
        info["nextPage"] = {"href": str(request.url.include_query_params(pageno=page_number + 1))}
    if page_number > 1:
        info["previousPage"] = {"href": str(request.url.include_query_params(pageno=page_number - 1))}
    if params.get("collectioncount") == "1":
        info["totalCount"] = len(rows)
        info["totalPages"] = total_pages
    body = {
        "member": [renderer.member(row) for row in page],
        "href": f"{request.base_url}{OSLC_ROOT.lstrip('/')}/os/{structure.name}",
        "responseInfo": info,
    }
    return _json(renderer.lean, body)


def _page_size(state: SandboxState, params: Mapping[str, str]) -> int:
    if "oslc.pageSize" not in params:
        return state.auto_page_size
    size = _positive(params["oslc.pageSize"], "oslc.pageSize")
    if size > state.max_page_size:
        raise WhereError(
            f"BMXAA8729E - The page size {size} exceeds the maximum page size {state.max_page_size} "
            "set in mxe.oslc.maxpagesize."
        )
    return size


def _positive(value: str, name: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise WhereError(f"BMXAA1234E - The value {value!r} of {name} is not a positive integer")
    return int(value)


def _member(state: SandboxState) -> Any:
    async def handle(request: Request) -> Response:
        failure = _authenticate(state, request)
        if failure is not None:
            return failure
        structure = _structure(request)
        key = _key_from_rest_id(request.path_params["rest_id"])
        row = None
        if structure is not None and key is not None and len(key) == len(structure.key):
            row = state.data.find(structure, dict(zip(structure.key, key, strict=True)))
        if structure is None or row is None:
            return error_response(404, "BMXAA8727E", "BMXAA8727E - The resource was not found.")
        try:
            selection = parse_select(request.query_params.get("oslc.select", "*"))
        except WhereError as exc:
            return error_response(400, "BMXAA1234E", str(exc))
        renderer = _Renderer(state, request, structure, selection)
        return _json(renderer.lean, renderer.member(row))

    return handle


def rest_id(*parts: str) -> str:
    """Encode a key the way Maximo's resource URLs do: ``_`` and URL-safe base64 with ``-`` padding."""
    encoded = base64.urlsafe_b64encode("/".join(parts).encode()).decode("ascii")
    return "_" + encoded.replace("=", "-")


def _key_from_rest_id(value: str) -> list[str] | None:
    if not value.startswith("_"):
        return None
    try:
        decoded = base64.urlsafe_b64decode(value[1:].replace("-", "=")).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.rsplit("/", 1)


class _Renderer:
    """Writes rows as OSLC JSON members: lean or namespaced, nulls dropped unless ``_dropnulls=0``."""

    def __init__(
        self, state: SandboxState, request: Request, structure: ObjectStructure, selection: Selection | None
    ) -> None:
        self.state = state
        self.structure = structure
        self.selection = selection
        self.lean = request.query_params.get("lean") == "1"
        self.drop_nulls = request.query_params.get("_dropnulls") != "0"
        self.internal_values = request.query_params.get("internalvalues") == "1"
        self.base = f"{request.base_url}{OSLC_ROOT.lstrip('/')}/os/{structure.name}"

    def member(self, row: Mapping[str, Any]) -> dict[str, Any]:
        href = f"{self.base}/{rest_id(*(str(row[name]) for name in self.structure.key))}"
        body: dict[str, Any] = {"href": href}
        if self.selection is not None and not self.selection:
            return body
        body["_rowstamp"] = str(row["_rowstamp"])
        self._attributes(body, row, self.structure.attributes, self.selection)
        for name, child in self.structure.children.items():
            if self.selection is not None and name not in self.selection and "*" not in self.selection:
                continue
            nested = None if self.selection is None else self.selection.get(name)
            attributes = (
                self.structure.attributes if child.table == self.structure.table else LOCHIERARCHY_ATTRIBUTES
            )
            rendered = []
            for related in sorted(
                self.state.data.children(child, row), key=lambda item: item.get("taskid") or 0
            ):
                joined = (str(related[ours]) for ours, _ in child.join)
                own = str(related.get("wonum") or related.get("systemid") or "")
                item: dict[str, Any] = {"href": f"http://childkey#{rest_id(name.upper(), *joined, own)[1:]}"}
                if "_rowstamp" in related:
                    item["_rowstamp"] = str(related["_rowstamp"])
                self._attributes(item, related, attributes, nested)
                rendered.append(item)
            body[name] = rendered
        return body

    def _attributes(
        self,
        body: dict[str, Any],
        row: Mapping[str, Any],
        attributes: Mapping[str, str],
        selection: Selection | None,
    ) -> None:
        everything = selection is None or "*" in selection
        for name in attributes:
            if not everything and selection is not None and name not in selection:
                continue
            value = row.get(name)
            if value is None and self.drop_nulls:
                continue
            body[name] = self._value(value)
            if name == "status" and value is not None:
                body["status_description"] = self.structure.statuses.get(value, value)
                if self.internal_values:
                    body["status_maxvalue"] = value

    def _value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(self.state.server_zone).isoformat(timespec="seconds")
        if isinstance(value, Decimal):
            # Maximo writes decimal attributes as JSON numbers.
            return float(value)
        return value


def _json(lean: bool, body: dict[str, Any]) -> Response:
    return JSONResponse(body if lean else _namespaced(body))


def _namespaced(body: Any) -> Any:
    """Rename keys to the namespaced form Maximo returns without ``lean=1``: ``spi:`` and ``rdfs:member``."""
    if isinstance(body, list):
        return [_namespaced(item) for item in body]
    if not isinstance(body, dict):
        return body
    renamed: dict[str, Any] = {}
    for name, value in body.items():
        if name == "member":
            renamed["rdfs:member"] = _namespaced(value)
        elif name == "responseInfo":
            renamed["oslc:responseInfo"] = {
                f"oslc:{key}": ({"rdf:resource": item["href"]} if isinstance(item, dict) else item)
                for key, item in value.items()
            }
        elif name == "href":
            renamed["rdf:about"] = value
        else:
            renamed[f"spi:{name}"] = _namespaced(value)
    return renamed


def _admin_routes(state: SandboxState) -> list[Route]:
    async def records(request: Request) -> Response:
        structure = _structure(request)
        if structure is None:
            valid = ", ".join(OBJECT_STRUCTURES)
            return JSONResponse({"error": f"unknown object structure; valid: {valid}"}, status_code=404)
        try:
            return await _admin_change(state, request, structure)
        except (ValueError, WhereError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def rotate(request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        state.credentials = SandboxCredentials(
            api_key=body.get("api_key") or secrets.token_urlsafe(24), user=state.credentials.user
        )
        logger.info("sandbox.maximo.credentials_rotated user=%s", state.credentials.user)
        return JSONResponse({"api_key": state.credentials.api_key})

    return [
        Route(f"{ADMIN_PREFIX}records/{{structure}}", records, methods=["GET", "POST", "PATCH", "DELETE"]),
        Route(f"{ADMIN_PREFIX}credentials/rotate", rotate, methods=["POST"]),
    ]


async def _admin_change(state: SandboxState, request: Request, structure: ObjectStructure) -> Response:
    data = state.data
    if request.method == "GET":
        return JSONResponse({"records": [_plain(row) for row in data.rows(structure.table)]})

    body = json.loads(await request.body() or b"{}")
    values = coerce_values(structure, body.get("values", {}), state.server_zone)
    parent = values.pop("parent", None) if structure.name == "mxapilocations" else None
    if request.method == "POST":
        row = data.insert(structure, values)
        if structure.name == "mxapilocations":
            hierarchy = {
                "location": row["location"],
                "siteid": row["siteid"],
                "parent": parent,
                "systemid": "PRIMARY",
            }
            data.rows("lochierarchy").append(hierarchy)
        logger.info(
            "sandbox.maximo.record_added structure=%s key=%s", structure.name, _key_text(structure, row)
        )
        return JSONResponse({"record": _plain(row)}, status_code=201)

    key = coerce_values(structure, body.get("key", {}), state.server_zone)
    if set(key) != set(structure.key):
        raise ValueError(f"key must be an object with {', '.join(structure.key)}")
    if request.method == "DELETE":
        data.delete(structure, key)
        logger.info(
            "sandbox.maximo.record_deleted structure=%s key=%s", structure.name, _key_text(structure, key)
        )
        return Response(status_code=204)

    row = data.update(structure, key, values)
    if parent is not None:
        for hierarchy in data.children(structure.children["lochierarchy"], row):
            hierarchy["parent"] = parent
    logger.info(
        "sandbox.maximo.record_changed structure=%s key=%s", structure.name, _key_text(structure, row)
    )
    return JSONResponse({"record": _plain(row)})


def _key_text(structure: ObjectStructure, row: Mapping[str, Any]) -> str:
    return "/".join(str(row[name]) for name in structure.key)


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            rendered[name] = value.isoformat()
        elif isinstance(value, Decimal):
            rendered[name] = format(value, "f")
        else:
            rendered[name] = value
    return rendered
