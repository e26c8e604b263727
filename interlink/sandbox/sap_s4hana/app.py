"""The SAP sandbox's Starlette app: OData v2 routes, basic auth, CSRF tokens and admin routes."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from interlink.sandbox.faults import ADMIN_PREFIX, FaultMiddleware, FaultPlan, fault_routes
from interlink.sandbox.sap_s4hana.data import Key, SapData, coerce_values, key_of
from interlink.sandbox.sap_s4hana.odata_json import (
    ExpandTree,
    NotFound,
    Resource,
    Serializer,
    from_json,
    parse_expand,
    parse_resource,
    parse_select,
)
from interlink.sandbox.sap_s4hana.query import QueryError, parse_filter, parse_orderby, sort_records
from interlink.sandbox.sap_s4hana.schema import ENTITY_SETS, SERVICES, EntitySet

logger = logging.getLogger(__name__)

ODATA_ROOT = "/sap/opu/odata/sap"
WRITE_METHODS = ("POST", "PUT", "PATCH", "MERGE", "DELETE")
SYSTEM_ID = "S4H"


@dataclass(frozen=True)
class SandboxCredentials:
    """The one user the sandbox accepts, and the client (``sap-client``) it lives in."""

    username: str
    password: str
    sap_client: str = "100"


# The demo password is public on purpose: it only opens the sandbox's generated data.
DEFAULT_CREDENTIALS = SandboxCredentials(
    username="INTERLINK_DEMO",
    password="Sandbox-Welcome-1",  # noqa: S106
    sap_client="100",
)


@dataclass
class SandboxState:
    """Mutable state of one running sandbox."""

    data: SapData
    credentials: SandboxCredentials
    plan: FaultPlan
    max_page_size: int
    # CSRF tokens by session id; a session is created by a token fetch.
    sessions: dict[str, str] = field(default_factory=dict)


def build_app(state: SandboxState) -> Starlette:
    odata_methods = ["GET", *WRITE_METHODS]
    routes = [
        Route(f"{ODATA_ROOT}/{{service}}/", _service_document(state), methods=["GET"]),
        Route(f"{ODATA_ROOT}/{{service}}/{{resource:path}}", _odata(state), methods=odata_methods),
        *_admin_routes(state),
        *fault_routes(state.plan),
    ]
    return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, plan=state.plan)])


def _service_document(state: SandboxState) -> Any:
    async def handle(request: Request) -> Response:
        service = request.path_params["service"]
        if service not in SERVICES:
            return _error(404, "/IWFND/MED/170", f"No service found for namespace '', name '{service}'")
        failure = _authenticate(state, request)
        if failure is not None:
            return failure
        names = [entity_set.name for entity_set in SERVICES[service]]
        return _json_with_token(state, request, {"d": {"EntitySets": names}})

    return handle


def _odata(state: SandboxState) -> Any:
    async def handle(request: Request) -> Response:
        service = request.path_params["service"]
        if service not in SERVICES:
            return _error(404, "/IWFND/MED/170", f"No service found for namespace '', name '{service}'")
        failure = _authenticate(state, request)
        if failure is not None:
            return failure
        try:
            resource = parse_resource(service, _raw_resource_path(request, service))
            if request.method in WRITE_METHODS:
                return await _write(state, request, resource)
            return _read(state, request, resource)
        except NotFound as exc:
            return _error(404, "/IWBEP/CM_MGW_RT/020", str(exc))
        except QueryError as exc:
            return _error(400, "/IWBEP/CM_MGW_RT/022", str(exc))

    return handle


def _raw_resource_path(request: Request, service: str) -> str:
    """Take the resource path from the undecoded URL, so that ``%2F`` inside a key stays in the key."""
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    raw = raw_path.decode("latin-1")
    return raw.split("?", 1)[0].split(f"{ODATA_ROOT}/{service}/", 1)[1]


def _authenticate(state: SandboxState, request: Request) -> Response | None:
    client = request.query_params.get("sap-client", state.credentials.sap_client)
    header = request.headers.get("authorization", "")
    user, password = _basic_credentials(header)
    expected = state.credentials
    if (
        client == expected.sap_client
        and secrets.compare_digest(user, expected.username)
        and secrets.compare_digest(password, expected.password)
    ):
        return None
    realm = f'Basic realm="SAP NetWeaver Application Server [{SYSTEM_ID}/{client}]"'
    return PlainTextResponse("Logon failed", status_code=401, headers={"WWW-Authenticate": realm})


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


def _session_cookie(state: SandboxState) -> str:
    return f"SAP_SESSIONID_{SYSTEM_ID}_{state.credentials.sap_client}"


def _json_with_token(state: SandboxState, request: Request, body: Any, status: int = 200) -> Response:
    """Return a JSON response; one to ``x-csrf-token: Fetch`` also carries a token bound to a new session."""
    response = JSONResponse(body, status_code=status)
    if request.headers.get("x-csrf-token", "").lower() == "fetch":
        session, token = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
        state.sessions[session] = token
        response.headers["x-csrf-token"] = token
        response.set_cookie(_session_cookie(state), session, httponly=True, path="/")
    return response


def _csrf_failure(state: SandboxState, request: Request) -> Response | None:
    session = request.cookies.get(_session_cookie(state), "")
    expected = state.sessions.get(session)
    given = request.headers.get("x-csrf-token", "")
    if expected is not None and secrets.compare_digest(given, expected):
        return None
    return PlainTextResponse(
        "CSRF token validation failed", status_code=403, headers={"x-csrf-token": "Required"}
    )


def _read(state: SandboxState, request: Request, resource: Resource) -> Response:
    if not _wants_json(request):
        return PlainTextResponse(
            "The sandbox answers JSON only: send Accept: application/json or $format=json", status_code=406
        )
    serializer = Serializer(state.data, f"{request.base_url}{ODATA_ROOT.lstrip('/')}")
    entity_set = resource.entity_set
    if resource.key is None:
        return _collection(state, request, entity_set, state.data.rows(entity_set.name), serializer, resource)
    row = state.data.get(entity_set.name, resource.key)
    if row is None:
        raise NotFound(f"Resource not found for the segment '{entity_set.type_name}'")
    if resource.navigation is None:
        expand = parse_expand(request.query_params.get("$expand"), entity_set)
        select = parse_select(request.query_params.get("$select"), entity_set)
        return _json_with_token(state, request, {"d": serializer.entity(entity_set, row, expand, select)})
    navigation = entity_set.navigation(resource.navigation)
    assert navigation is not None
    target = ENTITY_SETS[navigation.target]
    related = state.data.related(navigation.join, target.name, row)
    if navigation.many:
        return _collection(state, request, target, related, serializer, resource)
    if not related:
        return _json_with_token(state, request, {"d": None})
    return _json_with_token(state, request, {"d": serializer.entity(target, related[0])})


def _wants_json(request: Request) -> bool:
    requested = request.query_params.get("$format")
    if requested is not None:
        return requested.lower() == "json"
    return "json" in request.headers.get("accept", "")


def _collection(
    state: SandboxState,
    request: Request,
    entity_set: EntitySet,
    rows: list[dict[str, Any]],
    serializer: Serializer,
    resource: Resource,
) -> Response:
    params = request.query_params
    matching = rows
    if "$filter" in params:
        predicate = parse_filter(params["$filter"], entity_set.properties, entity_set.type_name)
        matching = [row for row in rows if predicate(row)]
    if resource.count:
        return PlainTextResponse(str(len(matching)))
    order = (
        parse_orderby(params["$orderby"], entity_set.properties, entity_set.type_name)
        if "$orderby" in params
        else []
    )
    ordered = sort_records(sorted(matching, key=lambda row: key_of(entity_set, row)), order)
    skip = _non_negative(params, "$skip", 0)
    top = _non_negative(params, "$top", None)
    window = ordered[skip : None if top is None else skip + top]
    offset = _non_negative(params, "$skiptoken", 0)
    page = window[offset : offset + state.max_page_size]

    path = request.url.path
    if state.plan.take("malformed", path) is not None:
        return Response(b'{"d": {"results": [{"__metadata": ', media_type="application/json")
    expand = parse_expand(params.get("$expand"), entity_set)
    select = parse_select(params.get("$select"), entity_set)
    body: dict[str, Any] = {"results": [serializer.entity(entity_set, row, expand, select) for row in page]}
    if params.get("$inlinecount") == "allpages":
        body["__count"] = str(len(ordered))
    if state.plan.take("repeat_next", path) is not None:
        body["__next"] = str(request.url)
    elif offset + state.max_page_size < len(window):
        body["__next"] = str(request.url.include_query_params(**{"$skiptoken": offset + state.max_page_size}))
    return _json_with_token(state, request, {"d": body})


def _non_negative(params: Mapping[str, str], name: str, default: int | None) -> Any:
    if name not in params:
        return default
    value = params[name]
    if not value.isdigit():
        raise QueryError(f"invalid value {value!r} for {name}; expected a non-negative integer")
    return int(value)


async def _write(state: SandboxState, request: Request, resource: Resource) -> Response:
    csrf = _csrf_failure(state, request)
    if csrf is not None:
        return csrf
    entity_set = resource.entity_set
    if request.method == "POST":
        body = await _json_body(request)
        if resource.key is None:
            row = _create(state.data, entity_set, body, parent=None)
        else:
            navigation = entity_set.navigation(resource.navigation or "")
            parent = state.data.get(entity_set.name, resource.key)
            if navigation is None or parent is None or not navigation.many:
                raise NotFound("POST needs an entity set or a to-many navigation of an existing entity")
            row = _create(state.data, ENTITY_SETS[navigation.target], body, parent=(navigation.join, parent))
            entity_set = ENTITY_SETS[navigation.target]
        logger.info("sandbox.sap.created entity_set=%s key=%s", entity_set.name, key_of(entity_set, row))
        serializer = Serializer(state.data, f"{request.base_url}{ODATA_ROOT.lstrip('/')}")
        expand: ExpandTree = {nav.name: {} for nav in entity_set.navigations if nav.many}
        return _json_with_token(state, request, {"d": serializer.entity(entity_set, row, expand)}, status=201)
    if resource.key is None or resource.navigation is not None:
        raise QueryError(f"{request.method} needs the key of one entity")
    if request.method == "DELETE":
        try:
            state.data.delete(entity_set, resource.key)
        except LookupError as exc:
            raise NotFound(str(exc)) from exc
        return Response(status_code=204)
    values = from_json(entity_set, _unwrap(await _json_body(request)))
    try:
        state.data.update(entity_set, resource.key, values)
    except LookupError as exc:
        raise NotFound(str(exc)) from exc
    except ValueError as exc:
        raise QueryError(str(exc)) from exc
    return Response(status_code=204)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise QueryError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise QueryError("the request body must be a JSON object")
    return body


def _unwrap(body: dict[str, Any]) -> dict[str, Any]:
    inner = body.get("d")
    return inner if isinstance(inner, dict) else body


def _create(
    data: SapData,
    entity_set: EntitySet,
    body: dict[str, Any],
    parent: tuple[tuple[tuple[str, str], ...], Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """Create a record from an OData body, with deep inserts through to-many navigations."""
    body = _unwrap(body)
    values = from_json(entity_set, body)
    if parent is not None:
        join, parent_row = parent
        values.update({theirs: parent_row[ours] for ours, theirs in join})
    values = _with_generated_keys(data, entity_set, values)
    try:
        row = data.insert(entity_set, values)
    except ValueError as exc:
        raise QueryError(str(exc)) from exc
    for navigation in entity_set.navigations:
        children = body.get(navigation.name)
        if not navigation.many or children is None:
            continue
        items = children.get("results", []) if isinstance(children, dict) else children
        for child in items:
            _create(data, ENTITY_SETS[navigation.target], child, parent=(navigation.join, row))
    return row


def _with_generated_keys(data: SapData, entity_set: EntitySet, values: dict[str, Any]) -> dict[str, Any]:
    """Fill missing numeric key properties the way SAP number ranges do: the next number after the highest."""
    completed = dict(values)
    for name in entity_set.keys:
        if completed.get(name) not in (None, ""):
            continue
        siblings = [
            row[name]
            for row in data.rows(entity_set.name)
            if all(row[other] == completed.get(other) for other in entity_set.keys if other != name)
        ]
        numeric = [value for value in siblings if isinstance(value, str) and value.isdigit()]
        step = 10 if len(entity_set.keys) > 1 else 1
        if not numeric:
            completed[name] = str(step) if len(entity_set.keys) > 1 else "1"
            continue
        highest = max(numeric, key=int)
        completed[name] = str(int(highest) + step).zfill(len(highest) if highest.startswith("0") else 0)
    return completed


def _admin_routes(state: SandboxState) -> list[Route]:
    async def records(request: Request) -> Response:
        entity_set = ENTITY_SETS.get(request.path_params["entity_set"])
        if entity_set is None:
            valid = ", ".join(ENTITY_SETS)
            return JSONResponse({"error": f"unknown entity set; valid sets: {valid}"}, status_code=404)
        try:
            return await _admin_change(state, request, entity_set)
        except (ValueError, QueryError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def rotate(request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        new_password = body.get("password") or secrets.token_urlsafe(12)
        state.credentials = replace(state.credentials, password=new_password)
        state.sessions.clear()
        logger.info("sandbox.sap.credentials_rotated username=%s", state.credentials.username)
        return JSONResponse(
            {
                "username": state.credentials.username,
                "password": state.credentials.password,
                "sap_client": state.credentials.sap_client,
            }
        )

    return [
        Route(f"{ADMIN_PREFIX}records/{{entity_set}}", records, methods=["GET", "POST", "PATCH", "DELETE"]),
        Route(f"{ADMIN_PREFIX}credentials/rotate", rotate, methods=["POST"]),
    ]


async def _admin_change(state: SandboxState, request: Request, entity_set: EntitySet) -> Response:
    if request.method == "GET":
        rows = sorted(state.data.rows(entity_set.name), key=lambda row: key_of(entity_set, row))
        return JSONResponse({"records": [_plain(row) for row in rows]})
    body = json.loads(await request.body() or b"{}")
    if request.method == "POST":
        values = _with_generated_keys(
            state.data, entity_set, coerce_values(entity_set, body.get("values", {}))
        )
        row = state.data.insert(entity_set, values)
        logger.info("sandbox.sap.record_added entity_set=%s key=%s", entity_set.name, key_of(entity_set, row))
        return JSONResponse({"record": _plain(row)}, status_code=201)
    key = _admin_key(entity_set, body.get("key"))
    if request.method == "DELETE":
        state.data.delete(entity_set, key)
        logger.info("sandbox.sap.record_deleted entity_set=%s key=%s", entity_set.name, key)
        return Response(status_code=204)
    row = state.data.update(entity_set, key, coerce_values(entity_set, body.get("values", {})))
    logger.info("sandbox.sap.record_changed entity_set=%s key=%s", entity_set.name, key)
    return JSONResponse({"record": _plain(row)})


def _admin_key(entity_set: EntitySet, given: Any) -> Key:
    if not isinstance(given, dict) or set(given) != set(entity_set.keys):
        raise ValueError(f"key must be an object with {', '.join(entity_set.keys)}")
    typed = coerce_values(entity_set, given)
    return tuple(typed[name] for name in entity_set.keys)


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """Render typed values as plain JSON: ISO 8601 times and decimal strings."""
    rendered: dict[str, Any] = {}
    for name, value in row.items():
        if hasattr(value, "isoformat"):
            rendered[name] = value.isoformat()
        elif isinstance(value, Decimal):
            rendered[name] = format(value, "f")
        elif isinstance(value, bool | int | str) or value is None:
            rendered[name] = value
        else:
            rendered[name] = str(value)
    return rendered


def _error(status: int, code: str, message: str) -> Response:
    body = {"error": {"code": code, "message": {"lang": "en", "value": message}}}
    return JSONResponse(body, status_code=status)
