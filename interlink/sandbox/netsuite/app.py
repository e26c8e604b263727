"""Starlette routes of the NetSuite sandbox: REST records, SuiteQL, and the admin routes."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from interlink.sandbox.faults import ADMIN_PREFIX, FaultMiddleware, FaultPlan, fault_routes
from interlink.sandbox.netsuite import data as ns
from interlink.sandbox.netsuite.jsonbody import dumps, json_response
from interlink.sandbox.netsuite.queries import (
    SQL_OPERATORS,
    QueryError,
    SuiteQLQuery,
    format_account_date,
    parse_q,
    parse_suiteql,
)
from interlink.sandbox.netsuite.tba import LoginRejected, TokenVerifier

logger = logging.getLogger(__name__)

REST_PREFIX = "/services/rest/"
MAX_LIMIT = 1000
# Without SuiteAnalytics Connect, collections and SuiteQL stop at 100,000 results.
RESULT_CAP = 100_000
# The SuiteQL tables of the sandbox: the record type behind each, and the fixed values of its type column.
TABLES = {
    "transaction": ("purchaseOrder", {"type": "PurchOrd"}),
    "vendor": ("vendor", {}),
    "item": ("inventoryItem", {"itemtype": "InvtPart"}),
    "location": ("location", {}),
}


@dataclass
class Sandbox:
    data: ns.NetSuiteData
    verifier: TokenVerifier
    plan: FaultPlan
    zone: ZoneInfo


def problem(status: int, title: str, code: str, detail: str) -> Response:
    body = {
        "type": f"https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.{status - 399}",
        "title": title,
        "status": status,
        "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
    }
    return json_response(body, status)


class ConcurrencyLimit:
    """Rejects an API request beyond ``limit`` in flight with 429 ``CONCURRENCY_LIMIT_EXCEEDED``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(REST_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            response = problem(
                429,
                "Too Many Requests",
                "CONCURRENCY_LIMIT_EXCEEDED",
                "Concurrent request limit exceeded. Request blocked.",
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def build_app(sandbox: Sandbox, concurrency_limit: int) -> Starlette:
    routes = [
        Route("/services/rest/record/v1/{record_type}", partial(collection, sandbox), methods=["GET"]),
        Route(
            "/services/rest/record/v1/{record_type}/{record_id}",
            partial(one_record, sandbox),
            methods=["GET"],
        ),
        Route("/services/rest/query/v1/suiteql", partial(suiteql, sandbox), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}records/{{record_type}}", partial(admin_create, sandbox), methods=["POST"]),
        Route(
            f"{ADMIN_PREFIX}records/{{record_type}}/{{record_id}}",
            partial(admin_change, sandbox),
            methods=["PATCH", "DELETE"],
        ),
        Route(f"{ADMIN_PREFIX}credentials/rotate", partial(admin_rotate, sandbox), methods=["POST"]),
        *fault_routes(sandbox.plan),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(FaultMiddleware, plan=sandbox.plan)
    app.add_middleware(ConcurrencyLimit, limit=concurrency_limit)
    app.state.sandbox = sandbox
    return app


def _authenticate(sandbox: Sandbox, request: Request) -> Response | None:
    url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
    try:
        sandbox.verifier.verify(
            request.method,
            url,
            request.query_params.multi_items(),
            request.headers.get("Authorization", ""),
            sandbox.data.clock(),
        )
    except LoginRejected as exc:
        logger.info("netsuite_sandbox.login_rejected reason=%s", exc)
        return problem(
            401,
            "Unauthorized",
            "INVALID_LOGIN",
            "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at "
            "Setup > Users/Roles > User Management > View Login Audit Trail.",
        )
    return None


def _paging(request: Request) -> tuple[int, int] | Response:
    try:
        limit = int(request.query_params.get("limit", MAX_LIMIT))
        offset = int(request.query_params.get("offset", 0))
    except ValueError:
        return problem(400, "Bad Request", "INVALID_PARAMETER", "limit and offset must be integers.")
    if not 1 <= limit <= MAX_LIMIT:
        return problem(
            400, "Bad Request", "INVALID_PARAMETER", f"Invalid limit {limit}; use 1 to {MAX_LIMIT}."
        )
    if offset < 0 or offset % limit:
        return problem(
            400,
            "Bad Request",
            "INVALID_PARAMETER",
            f"Invalid offset {offset}; it must be a multiple of the limit.",
        )
    if offset + limit > RESULT_CAP:
        return problem(
            400,
            "Bad Request",
            "INVALID_PARAMETER",
            f"offset {offset} with limit {limit} passes the maximum of {RESULT_CAP} results.",
        )
    return limit, offset


def _page_links(request: Request, limit: int, offset: int, total: int) -> list[dict[str, str]]:
    base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
    kept = [
        (name, value) for name, value in request.query_params.multi_items() if name not in ("limit", "offset")
    ]

    def link(rel: str, at: int) -> dict[str, str]:
        return {"rel": rel, "href": f"{base}?{urlencode([*kept, ('limit', limit), ('offset', at)])}"}

    links = [link("first", 0)]
    if offset > 0:
        links.append(link("prev", max(0, offset - limit)))
    if offset + limit < total:
        links.append(link("next", offset + limit))
    links.append(link("last", max(0, (total - 1) // limit * limit)))
    links.append({"rel": "self", "href": str(request.url)})
    return links


def _listing(
    sandbox: Sandbox, request: Request, items: list[dict[str, Any]], total: int, limit: int, offset: int
) -> Response:
    links = _page_links(request, limit, offset, total)
    if sandbox.plan.take("repeat_next", request.url.path) is not None:
        links = [
            link if link["rel"] != "next" else {"rel": "next", "href": str(request.url)} for link in links
        ]
    body = {
        "links": links,
        "count": len(items),
        "hasMore": offset + limit < total,
        "items": items,
        "offset": offset,
        "totalResults": total,
    }
    if sandbox.plan.take("malformed", request.url.path) is not None:
        text = dumps(body)
        return Response(text[: len(text) // 2], media_type="application/json")
    return json_response(body)


async def collection(sandbox: Sandbox, request: Request) -> Response:
    denied = _authenticate(sandbox, request)
    if denied is not None:
        return denied
    record_type = request.path_params["record_type"]
    if record_type not in ns.RECORD_TYPES:
        return problem(404, "Not Found", "NONEXISTENT_ID", f"Record type '{record_type}' does not exist.")
    paging = _paging(request)
    if isinstance(paging, Response):
        return paging
    limit, offset = paging
    records = sorted(sandbox.data.records[record_type].values(), key=lambda record: int(record["id"]))
    if "q" in request.query_params:
        try:
            predicate = parse_q(request.query_params["q"], sandbox.zone)
        except QueryError as exc:
            return problem(400, "Bad Request", "INVALID_PARAMETER", str(exc))
        records = [record for record in records if predicate(record)]
    base = f"{request.url.scheme}://{request.url.netloc}/services/rest/record/v1/{record_type}"
    items = [
        {"links": [{"rel": "self", "href": f"{base}/{record['id']}"}], "id": record["id"]}
        for record in records[offset : offset + limit]
    ]
    return _listing(sandbox, request, items, len(records), limit, offset)


async def one_record(sandbox: Sandbox, request: Request) -> Response:
    denied = _authenticate(sandbox, request)
    if denied is not None:
        return denied
    record_type, record_id = request.path_params["record_type"], request.path_params["record_id"]
    record = sandbox.data.records.get(record_type, {}).get(record_id)
    if record is None:
        return problem(
            404,
            "Not Found",
            "NONEXISTENT_ID",
            f"The record instance does not exist. Invalid id: {record_id}.",
        )
    expand = request.query_params.get("expandSubResources") == "true"
    root = f"{request.url.scheme}://{request.url.netloc}/services/rest/record/v1"
    return json_response(render(record_type, record, root, str(request.url), expand=expand))


def render(record_type: str, record: ns.Record, root: str, self_url: str, *, expand: bool) -> dict[str, Any]:
    """Return the record as the REST API sends it: references with links, times in UTC, the item sublist."""
    own = f"{root}/{record_type}/{record['id']}"
    body: dict[str, Any] = {"links": [{"rel": "self", "href": self_url}]}
    for name, value in record.items():
        if name == "lines":
            continue
        body[name] = _value(value, root)
    if record_type == "purchaseOrder":
        sublist: dict[str, Any] = {"links": [{"rel": "self", "href": f"{own}/item"}]}
        if expand:
            sublist["items"] = [
                {"links": [{"rel": "self", "href": f"{own}/item/{line['line']}"}], **_value(line, root)}
                for line in record["lines"]
            ]
            sublist["totalResults"] = len(record["lines"])
        body["item"] = sublist
    return body


def _value(value: Any, root: str) -> Any:
    if isinstance(value, datetime):
        return ns.format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        if "_type" in value:
            return {
                "id": value["id"],
                "refName": value["refName"],
                "links": [{"rel": "self", "href": f"{root}/{value['_type'].lower()}/{value['id']}"}],
            }
        return {key: _value(item, root) for key, item in value.items()}
    if isinstance(value, list):
        return [_value(item, root) for item in value]
    return value


async def suiteql(sandbox: Sandbox, request: Request) -> Response:
    denied = _authenticate(sandbox, request)
    if denied is not None:
        return denied
    if request.headers.get("Prefer", "").lower() != "transient":
        return problem(
            400, "Bad Request", "INVALID_PARAMETER", "SuiteQL requests must carry 'Prefer: transient'."
        )
    paging = _paging(request)
    if isinstance(paging, Response):
        return paging
    limit, offset = paging
    try:
        query = parse_suiteql(str(json.loads(await request.body()).get("q", "")))
        rows = _run(sandbox, query)
    except (QueryError, ValueError) as exc:
        return problem(400, "Bad Request", "INVALID_PARAMETER", f"Invalid search query: {exc}")
    items = [{"links": [], **row} for row in rows[offset : offset + limit]]
    return _listing(sandbox, request, items, len(rows), limit, offset)


def _row(sandbox: Sandbox, record: ns.Record, record_type: str, fixed: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": int(record["id"]),
        "lastmodifieddate": record["lastModifiedDate"],
        **fixed,
    }
    for source, column in (
        ("tranId", "tranid"),
        ("entityId", "entityid"),
        ("itemId", "itemid"),
        ("name", "name"),
    ):
        if source in record:
            row[column] = record[source]
    return row


def _run(sandbox: Sandbox, query: SuiteQLQuery) -> list[dict[str, Any]]:
    if query.table not in TABLES:
        raise QueryError(f"unknown table {query.table!r}; the sandbox has {', '.join(TABLES)}")
    record_type, fixed = TABLES[query.table]
    rows = [
        _row(sandbox, record, record_type, fixed) for record in sandbox.data.records[record_type].values()
    ]
    for column, op, literal in query.conditions:
        rows = [row for row in rows if _matches(sandbox, row, column, op, literal)]
    if query.order_by:
        order_by = query.order_by
        rows.sort(
            key=lambda row: (row.get(order_by) is None, row.get(order_by) or 0), reverse=query.descending
        )
    columns = query.columns
    selected = []
    for row in rows:
        picked = row if columns == ["*"] else {column: row.get(column) for column in columns}
        selected.append({key: _sql_output(sandbox, value) for key, value in picked.items()})
    return selected


def _matches(sandbox: Sandbox, row: dict[str, Any], column: str, op: str, literal: Any) -> bool:
    value = row.get(column)
    if value is None:
        return False
    if isinstance(value, datetime):
        value = value.astimezone(sandbox.zone).date()
        if not isinstance(literal, date):
            raise QueryError(f"compare {column} with TO_DATE(...)")
    return SQL_OPERATORS[op](value, literal)


def _sql_output(sandbox: Sandbox, value: Any) -> Any:
    if isinstance(value, datetime):
        return format_account_date(value, sandbox.zone)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


async def admin_create(sandbox: Sandbox, request: Request) -> Response:
    record_type = request.path_params["record_type"]
    if record_type not in ns.RECORD_TYPES:
        return problem(404, "Not Found", "NONEXISTENT_ID", f"unknown record type {record_type!r}")
    fields = json.loads(await request.body() or b"{}", parse_float=Decimal)
    record = ns.create_record(sandbox.data, record_type, fields)
    return json_response({"id": record["id"]}, 201)


async def admin_change(sandbox: Sandbox, request: Request) -> Response:
    record_type, record_id = request.path_params["record_type"], request.path_params["record_id"]
    record = sandbox.data.records.get(record_type, {}).get(record_id)
    if record is None:
        return problem(404, "Not Found", "NONEXISTENT_ID", f"no {record_type} record with id {record_id}")
    if request.method == "DELETE":
        del sandbox.data.records[record_type][record_id]
        return Response(status_code=204)
    ns.apply_changes(
        sandbox.data, record_type, record, json.loads(await request.body() or b"{}", parse_float=Decimal)
    )
    return json_response({"id": record_id, "lastModifiedDate": ns.format_time(record["lastModifiedDate"])})


async def admin_rotate(sandbox: Sandbox, request: Request) -> Response:
    """Issue a new token id and secret; the old token stops working at once."""
    sandbox.verifier.token_id = secrets.token_hex(32)
    sandbox.verifier.token_secret = secrets.token_hex(32)
    return json_response(
        {"token_id": sandbox.verifier.token_id, "token_secret": sandbox.verifier.token_secret}
    )
