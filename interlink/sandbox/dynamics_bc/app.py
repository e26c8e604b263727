"""Starlette routes of the Business Central sandbox: the identity provider, the API and the admin routes."""

from __future__ import annotations

import json
import math
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.sandbox.dynamics_bc import data as bc
from interlink.sandbox.dynamics_bc import identity
from interlink.sandbox.dynamics_bc.jsonbody import dumps, json_response
from interlink.sandbox.dynamics_bc.query import Predicate, QueryError, filter_keys, parse_filter, select
from interlink.sandbox.faults import ADMIN_PREFIX, FaultMiddleware, FaultPlan, fault_routes

API_SCOPE = "https://api.businesscentral.dynamics.com/.default"
_PATH = re.compile(
    r"companies(?:\((?P<company>[^)]*)\))?"
    r"(?:/(?P<set>\w+)(?:\((?P<id>[^)]*)\))?(?:/(?P<sub>\w+))?)?"
)
_READ_ONLY = {"id", "lastModifiedDateTime", "documentId"}


@dataclass
class SandboxCredentials:
    """The app registration the sandbox accepts, and the tenant and environment it serves."""

    tenant_id: str = "5d0c7a3e-6f3b-4c1e-9a0e-2b8f4e1d7c11"
    environment: str = "sandbox"
    client_id: str = "3f1b2c4d-8a9e-4f60-b1c2-d3e4f5a6b7c8"
    client_secret: str = "sandbox-client-secret"  # noqa: S105  (the published sandbox default)


@dataclass
class RateLimit:
    """At most ``requests`` API requests in any ``window`` seconds; more get HTTP 429 with Retry-After."""

    requests: int
    window: float
    seen: deque[float] = field(default_factory=deque)

    def retry_after(self) -> int | None:
        now = time.monotonic()
        while self.seen and now - self.seen[0] >= self.window:
            self.seen.popleft()
        if len(self.seen) >= self.requests:
            return max(1, math.ceil(self.window - (now - self.seen[0])))
        self.seen.append(now)
        return None


@dataclass
class Sandbox:
    data: bc.BusinessCentralData
    credentials: SandboxCredentials
    plan: FaultPlan
    page_size: int
    token_lifetime: timedelta
    rate_limit: RateLimit | None
    tokens: dict[str, datetime] = field(default_factory=dict)
    identity: identity.IdentityProvider = field(default_factory=identity.IdentityProvider)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def build_app(sandbox: Sandbox) -> Starlette:
    routes = [
        Route("/{tenant}/oauth2/v2.0/token", partial(token, sandbox), methods=["POST"]),
        Route(
            "/{tenant}/oauth2/v2.0/authorize",
            partial(identity.authorize, sandbox),
            methods=["GET", "POST"],
        ),
        Route(
            "/v2.0/{tenant}/{environment}/api/v2.0/{rest:path}",
            partial(api, sandbox),
            methods=["GET", "PATCH"],
        ),
        Route(
            f"{ADMIN_PREFIX}records/{{entity_set}}",
            partial(admin_create, sandbox),
            methods=["POST"],
        ),
        Route(
            f"{ADMIN_PREFIX}records/{{entity_set}}/{{record_id}}",
            partial(admin_change, sandbox),
            methods=["PATCH", "DELETE"],
        ),
        Route(
            f"{ADMIN_PREFIX}credentials/rotate",
            partial(admin_rotate, sandbox),
            methods=["POST"],
        ),
        Route(f"{ADMIN_PREFIX}tokens/expire", partial(admin_expire, sandbox), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}oauth/stats", partial(identity.admin_stats, sandbox), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}oauth/revoke", partial(identity.admin_revoke, sandbox), methods=["POST"]),
        *fault_routes(sandbox.plan),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(FaultMiddleware, plan=sandbox.plan)
    app.state.sandbox = sandbox
    return app


async def token(sandbox: Sandbox, request: Request) -> Response:
    """Issue tokens at ``/{tenant}/oauth2/v2.0/token``: client credentials, authorization code, refresh."""
    form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    expected = sandbox.credentials
    if request.path_params["tenant"] != expected.tenant_id:
        tenant = request.path_params["tenant"]
        return _oauth_error(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.", 90002)

    grant_type = form.get("grant_type", "")
    sandbox.identity.token_requests[grant_type or "(none)"] += 1
    if grant_type not in ("client_credentials", "authorization_code", "refresh_token"):
        return _oauth_error(
            400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 70003
        )
    if form.get("client_id") != expected.client_id:
        return _oauth_error(
            400,
            "unauthorized_client",
            f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the "
            "directory.",
            700016,
        )
    if not secrets.compare_digest(form.get("client_secret", ""), expected.client_secret):
        return _oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.", 7000215)

    if grant_type == "authorization_code":
        return identity.redeem_code(sandbox, form)
    if grant_type == "refresh_token":
        return identity.redeem_refresh_token(sandbox, form)
    if form.get("scope") != API_SCOPE:
        return _oauth_error(
            400,
            "invalid_scope",
            f"AADSTS70011: The provided scope '{form.get('scope')}' is not valid.",
            70011,
        )
    access_token = secrets.token_urlsafe(32)
    sandbox.tokens[access_token] = sandbox.data.clock() + sandbox.token_lifetime
    lifetime = int(sandbox.token_lifetime.total_seconds())
    body = {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }
    return json_response(body)


def _oauth_error(status: int, code: str, description: str, number: int) -> Response:
    body = {
        "error": code,
        "error_description": f"{description} Trace ID: {uuid.uuid4()}",
        "error_codes": [number],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
    }
    return json_response(body, status)


async def api(sandbox: Sandbox, request: Request) -> Response:
    denied = _authorize(sandbox, request)
    if denied is not None:
        return denied
    if sandbox.rate_limit is not None:
        wait = sandbox.rate_limit.retry_after()
        if wait is not None:
            return error(
                429,
                "Application_TooManyRequests",
                "Too many requests reached. Actual (6001). Maximum (6000).",
                {"Retry-After": str(wait)},
            )
    match = _PATH.fullmatch(request.path_params["rest"])
    if match is None:
        return error(404, "BadRequest_NotFound", f"No HTTP resource was found for {request.url.path}.")
    company = match.group("company")
    if match.group("set") is None:
        if company is not None and company != sandbox.data.company["id"]:
            return error(404, "BadRequest_NotFound", f"The company {company} does not exist.")
        return json_response({"value": [sandbox.data.company]} if company is None else sandbox.data.company)
    if company != sandbox.data.company["id"]:
        return error(404, "BadRequest_NotFound", f"The company {company!r} does not exist.")
    try:
        if request.method == "PATCH":
            return await _patch(sandbox, request, match)
        return _get(sandbox, request, match)
    except QueryError as exc:
        return error(400, "BadRequest", str(exc))


def _authorize(sandbox: Sandbox, request: Request) -> Response | None:
    expected = sandbox.credentials
    if (request.path_params["tenant"], request.path_params["environment"]) != (
        expected.tenant_id,
        expected.environment,
    ):
        return error(404, "NoEnvironment", "The environment does not exist for the tenant.")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    expiry = sandbox.tokens.get(value) if scheme.lower() == "bearer" else None
    if expiry is None or expiry <= sandbox.data.clock():
        return error(
            401,
            "Authentication_InvalidCredentials",
            "The server has rejected the client credentials.",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None


def _get(sandbox: Sandbox, request: Request, match: re.Match[str]) -> Response:
    entity_set = match.group("set")
    if entity_set not in bc.ENTITY_SETS:
        return error(404, "BadRequest_NotFound", f"The entity set {entity_set!r} does not exist.")
    options = request.query_params
    expand = options.get("$expand", "") == "purchaseOrderLines" and entity_set == "purchaseOrders"
    fields = [name for name in options.get("$select", "").split(",") if name] or None
    record_id = match.group("id")
    if record_id is not None:
        record = sandbox.data.records[entity_set].get(record_id)
        if record is None:
            return error(404, "BadRequest_NotFound", f"The {entity_set} record {record_id} does not exist.")
        if match.group("sub") == "purchaseOrderLines" and entity_set == "purchaseOrders":
            lines = [
                _render(sandbox, "purchaseOrderLines", line) for line in sandbox.data.lines_of(record_id)
            ]
            return json_response({"value": [select(line, fields) for line in lines]})
        return json_response(select(_render(sandbox, entity_set, record, expand=expand), fields))
    return _collection(sandbox, request, entity_set, expand, fields)


def _collection(
    sandbox: Sandbox, request: Request, entity_set: str, expand: bool, fields: list[str] | None
) -> Response:
    options = request.query_params
    ordered = sandbox.data.sorted_records(entity_set)
    predicate: Predicate | None = None
    if "$filter" in options:
        properties = set(ordered[0]) if ordered else {"id", "lastModifiedDateTime"}
        predicate = parse_filter(options["$filter"], properties | {"id"})

    after = options.get("$skiptoken")
    keys = filter_keys(options["$filter"]) if predicate is not None else None
    if keys is not None:
        # Only ids: look them up, so rereading orders by id does not scan every order.
        stored = sandbox.data.records[entity_set]
        found = sorted((stored[key] for key in keys if key in stored), key=lambda record: record["id"])
        matching: Iterable[dict[str, Any]] = [
            record for record in found if after is None or record["id"] > after
        ]
    else:
        start = sandbox.data.first_after(entity_set, after) if after else 0
        candidates = islice(ordered, start, None)
        matching = candidates if predicate is None else filter(predicate, candidates)
    size = min(sandbox.page_size, _preferred_page_size(request) or sandbox.page_size)

    # Take at most one record past the page, because it shows whether a next page exists.
    # A negative $top drops records from the end, as slicing does.
    top = int(options["$top"]) if "$top" in options else None
    if top is not None and top < 0:
        records = list(matching)[:top]
    else:
        records = list(islice(matching, size + 1 if top is None else min(top, size + 1)))
    page = records[:size]
    path = request.url.path
    body: dict[str, Any] = {
        "@odata.context": f"{request.base_url}$metadata#{entity_set}",
        "value": [_render_selected(sandbox, entity_set, record, expand, fields) for record in page],
    }
    if len(records) > size:
        next_link = _with_skiptoken(str(request.url), page[-1]["id"])
        if sandbox.plan.take("repeat_next", path) is not None:
            next_link = str(request.url)
        body["@odata.nextLink"] = next_link
    if sandbox.plan.take("malformed", path) is not None:
        return Response(dumps(body)[: len(dumps(body)) // 2], media_type="application/json")
    return json_response(body)


def _preferred_page_size(request: Request) -> int | None:
    for preference in request.headers.get("Prefer", "").split(","):
        name, _, value = preference.strip().partition("=")
        if name == "odata.maxpagesize" and value.isdigit():
            return max(1, int(value))
    return None


def _with_skiptoken(url: str, last_id: str) -> str:
    parts = urlsplit(url)
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name != "$skiptoken"
    ]
    query.append(("$skiptoken", last_id))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="$(),':"), ""))


def _render_selected(
    sandbox: Sandbox, entity_set: str, record: bc.Record, expand: bool, fields: list[str] | None
) -> dict[str, Any]:
    """Render a record with only the ``$select`` fields, as ``select(_render(...), fields)`` does."""
    if fields is None or entity_set == "purchaseOrders":
        return select(_render(sandbox, entity_set, record, expand=expand), fields)
    # Outside purchase orders a rendered record is its ETag and its own fields, so the fields
    # can be picked before they are converted. The connector's sweep of all lines gains most.
    wanted = set(fields)
    rendered: dict[str, Any] = {"@odata.etag": sandbox.data.etag(record["id"])}
    rendered.update(bc.to_json_ready({name: value for name, value in record.items() if name in wanted}))
    return rendered


def _render(sandbox: Sandbox, entity_set: str, record: bc.Record, *, expand: bool = False) -> dict[str, Any]:
    rendered: dict[str, Any] = {"@odata.etag": sandbox.data.etag(record["id"])}
    rendered.update(bc.to_json_ready(record))
    if entity_set == "purchaseOrders":
        lines = sandbox.data.lines_of(record["id"])
        rendered.update(sandbox.data.order_totals(record["id"], lines))
        rendered["fullyReceived"] = bool(lines) and all(
            line["receivedQuantity"] >= line["quantity"] for line in lines
        )
        if expand:
            rendered["purchaseOrderLines"] = [_render(sandbox, "purchaseOrderLines", line) for line in lines]
    return rendered


async def _patch(sandbox: Sandbox, request: Request, match: re.Match[str]) -> Response:
    entity_set, record_id = match.group("set"), match.group("id")
    record = sandbox.data.records.get(entity_set, {}).get(record_id or "")
    if record is None:
        return error(404, "BadRequest_NotFound", f"The {entity_set} record {record_id} does not exist.")
    if_match = request.headers.get("If-Match")
    if if_match is None:
        return error(428, "Request_PreconditionRequired", "The request must carry an If-Match header.")
    if if_match != "*" and if_match != sandbox.data.etag(record["id"]):
        return error(
            412,
            "Request_EntityChanged",
            "Could not save the changes because the record was changed by another user. Read it again.",
        )
    changes = json.loads(await request.body(), parse_float=Decimal)
    _apply(sandbox, entity_set, record, changes)
    return json_response(_render(sandbox, entity_set, record))


def _apply(sandbox: Sandbox, entity_set: str, record: bc.Record, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if name in _READ_ONLY or name not in record:
            continue
        record[name] = _coerce(record[name], value)
    if entity_set == "purchaseOrderLines":
        sandbox.data.recompute_line(record)
        # The order keeps its lastModifiedDateTime and ETag, as the docstring of data.py explains.
        sandbox.data.touch(record, stamp=False)
    else:
        sandbox.data.touch(record)


def _coerce(current: Any, value: Any) -> Any:
    if isinstance(current, Decimal) and isinstance(value, int | float | str | Decimal):
        return Decimal(str(value))
    if isinstance(current, datetime) and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if hasattr(current, "isoformat") and isinstance(value, str):
        return type(current).fromisoformat(value)
    return value


async def admin_create(sandbox: Sandbox, request: Request) -> Response:
    entity_set = request.path_params["entity_set"]
    if entity_set not in bc.ENTITY_SETS:
        return error(
            404, "NotFound", f"unknown entity set {entity_set!r}; valid: {', '.join(bc.ENTITY_SETS)}"
        )
    body = json.loads(await request.body() or b"{}", parse_float=Decimal)
    try:
        record = bc.create_record(sandbox.data, entity_set, body)
    except (KeyError, ValueError) as exc:
        return error(400, "BadRequest", f"cannot create the {entity_set} record: {exc}")
    return json_response(_render(sandbox, entity_set, record), 201)


async def admin_change(sandbox: Sandbox, request: Request) -> Response:
    entity_set, record_id = request.path_params["entity_set"], request.path_params["record_id"]
    record = sandbox.data.records.get(entity_set, {}).get(record_id)
    if record is None:
        return error(404, "NotFound", f"no {entity_set} record with id {record_id}")
    if request.method == "DELETE":
        bc.delete_record(sandbox.data, entity_set, record_id)
        return Response(status_code=204)
    changes = json.loads(await request.body() or b"{}", parse_float=Decimal)
    _apply(sandbox, entity_set, record, changes)
    return json_response(_render(sandbox, entity_set, record))


async def admin_rotate(sandbox: Sandbox, request: Request) -> Response:
    """Replace the client secret and revoke every token, so the old credentials stop working at once."""
    sandbox.credentials.client_secret = secrets.token_urlsafe(24)
    sandbox.tokens.clear()
    return json_response({"client_secret": sandbox.credentials.client_secret})


async def admin_expire(sandbox: Sandbox, request: Request) -> Response:
    """Expire every issued token; the credentials stay valid, so a client can get a new one."""
    sandbox.tokens.clear()
    return Response(status_code=204)
