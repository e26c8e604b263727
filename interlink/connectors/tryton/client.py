"""HTTP clients for Tryton 8.x: JSON-RPC with a user session, or REST with an application key.

JSON-RPC (``POST /<database>/rpc/``): ``common.db.login`` returns a session,
sent afterwards as ``Authorization: Session base64(login:user_id:key)``; a
dead session gets HTTP 401 with an empty body, and the client logs in
again once. REST (``/<database>/rest/model/<model>``) takes a bearer
application key, which survives password changes; a rejected key cannot be
repaired. Both return the same shapes once decoded: tagged values
(``{"__class__": "Decimal", ...}``) become Decimal, date and datetime (UTC,
as the server runs in UTC), and numbers are parsed as Decimal, never float.
Dotted fields such as ``party.name`` come back nested under ``party``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

import httpx

from interlink.connectors.errors import AuthenticationError, SourceDataError, SourceRejected
from interlink.connectors.http import RetryPolicy, send

logger = logging.getLogger(__name__)

Domain = list[Any]
Order = list[tuple[str, str]]


def decode_value(value: Any) -> Any:
    """Turn Tryton's tagged JSON values into Decimal, date and UTC datetime, recursively."""
    if isinstance(value, dict):
        kind = value.get("__class__")
        if kind == "Decimal":
            return Decimal(value["decimal"])
        if kind == "datetime":
            return datetime(
                value["year"], value["month"], value["day"],
                value.get("hour", 0), value.get("minute", 0), value.get("second", 0),
                value.get("microsecond", 0), tzinfo=UTC,
            )  # fmt: skip
        if kind == "date":
            return date(value["year"], value["month"], value["day"])
        if kind == "timedelta":
            return Decimal(str(value["seconds"]))
        return {key.rstrip("."): decode_value(item) for key, item in value.items() if key != "__name__"}
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    return value


def encode_value(value: Any) -> Any:
    """Tag datetimes (sent as naive UTC, the only form Tryton compares correctly) and decimals."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
        return {
            "__class__": "datetime",
            "year": moment.year, "month": moment.month, "day": moment.day,
            "hour": moment.hour, "minute": moment.minute, "second": moment.second,
            "microsecond": moment.microsecond,
        }  # fmt: skip
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, list | tuple):
        return [encode_value(item) for item in value]
    return value


def parse_json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise SourceDataError(
            f"Tryton returned invalid JSON for {response.request.method} {response.request.url.path}"
        ) from exc


class TrytonClient(Protocol):
    async def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str],
        *,
        order: Order,
        offset: int = 0,
        limit: int | None = None,
        active_test: bool = True,
    ) -> list[dict[str, Any]]:
        """Return matching records with ``fields``, decoded."""
        ...

    async def check(self) -> None:
        """Make one cheap authenticated call."""
        ...


class RpcClient:
    """JSON-RPC with a user session, renewed once when the server rejects it."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        database: str,
        username: str,
        password: str,
        *,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._http = http
        self._endpoint = f"{url.rstrip('/')}/{database}/rpc/"
        self._username = username
        self._password = password
        self._policy = policy
        self._session: str | None = None
        self._context: dict[str, Any] | None = None
        self._request_id = 0

    async def check(self) -> None:
        await self._login()

    async def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str],
        *,
        order: Order,
        offset: int = 0,
        limit: int | None = None,
        active_test: bool = True,
    ) -> list[dict[str, Any]]:
        context = dict(await self._user_context())
        context["active_test"] = active_test
        params = [encode_value(domain), offset, limit, [list(o) for o in order], list(fields), context]
        result = await self.call(f"model.{model}.search_read", params)
        if not isinstance(result, list):
            raise SourceDataError(
                f"Tryton's {model}.search_read returned {type(result).__name__}, not a list"
            )
        return [decode_value(record) for record in result]

    async def call(self, method: str, params: list[Any]) -> Any:
        """Call ``method`` with the session, logging in again once if the session died."""
        if self._session is None:
            await self._login()
        try:
            return await self._post(method, params, authorized=True)
        except AuthenticationError:
            logger.info("tryton.session.renew endpoint=%s", self._endpoint)
            await self._login()
            return await self._post(method, params, authorized=True)

    async def _login(self) -> None:
        self._session = None
        try:
            result = await self._post(
                "common.db.login", [self._username, {"password": self._password}, "en"], authorized=False
            )
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"Tryton rejected the login of user {self._username!r}; check the username and password",
                status_code=exc.status_code,
            ) from exc
        if not isinstance(result, list) or len(result) < 2:
            raise AuthenticationError(f"Tryton rejected the login of user {self._username!r}")
        user_id, key = result[0], result[1]
        token = base64.b64encode(f"{self._username}:{user_id}:{key}".encode()).decode()
        self._session = f"Session {token}"

    async def _user_context(self) -> dict[str, Any]:
        if self._context is None:
            context = await self.call("model.res.user.get_preferences", [True, {}])
            self._context = context if isinstance(context, dict) else {}
        return self._context

    async def _post(self, method: str, params: list[Any], *, authorized: bool) -> Any:
        self._request_id += 1
        headers = {"Authorization": self._session} if authorized and self._session else {}
        request = self._http.build_request(
            "POST",
            self._endpoint,
            json={"id": self._request_id, "method": method, "params": params},
            headers=headers,
        )
        response = await send(self._http, request, policy=self._policy)
        body = parse_json(response)
        if not isinstance(body, dict):
            raise SourceDataError(f"Tryton returned {type(body).__name__} for {method}, not an object")
        if body.get("error"):
            raise _rpc_error(method, body["error"])
        return body.get("result")


def _rpc_error(method: str, error: Any) -> Exception:
    kind = error[0] if isinstance(error, list) and error else str(error)
    detail = error[1] if isinstance(error, list) and len(error) > 1 else ""
    if kind in ("AccessError", "UserError", "UserWarning"):
        return SourceRejected(f"Tryton rejected {method}: {kind} {detail}")
    return SourceRejected(f"Tryton failed on {method}: {kind}")


class RestClient:
    """REST with a bearer application key."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        database: str,
        api_key: str,
        *,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._http = http
        self._root = f"{url.rstrip('/')}/{database}/rest/"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._policy = policy

    async def check(self) -> None:
        await self.search_read("res.user", [], ["login"], order=[("id", "ASC")], limit=1)

    async def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str],
        *,
        order: Order,
        offset: int = 0,
        limit: int | None = None,
        active_test: bool = True,
    ) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("d", _b64(encode_value(domain))),
            ("o", _b64([list(o) for o in order])),
            ("p", str(offset)),
        ]
        if limit is not None:
            params.append(("s", str(limit)))
        params.extend(("f", name) for name in fields)
        headers = {**self._headers, "X-Tryton-Context": _b64({"active_test": active_test})}
        request = self._http.build_request(
            "GET", f"{self._root}model/{model}", params=params, headers=headers
        )
        try:
            response = await send(self._http, request, policy=self._policy)
        except AuthenticationError as exc:
            raise AuthenticationError(
                "Tryton rejected the REST application key; create a new key for the user and reconnect",
                status_code=exc.status_code,
                reason_code="token_revoked",
            ) from exc
        body = parse_json(response)
        if not isinstance(body, list):
            raise SourceDataError(f"Tryton's REST response for {model} is {type(body).__name__}, not a list")
        return [decode_value(record) for record in body]


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
