"""HTTP access to a Matrix homeserver: authentication, session repair, rate limits, endpoints.

Every request goes through the shared ``send`` with ``classify_response``,
which turns Matrix error bodies into typed errors. ``M_LIMIT_EXCEEDED`` (and
any HTTP 429) becomes ``RateLimited`` with the wait the server requests
(``Retry-After``, else ``retry_after_ms``), so ``send`` retries it within its
bounded total wait. ``M_UNKNOWN_TOKEN`` becomes ``UnknownToken``, and the
client makes one repair attempt per request. It refreshes the access token
when it has a refresh token, or else logs in again when it has a username
and password. A new login reuses Interlink's device id, so the homeserver
revokes the old token. New tokens are saved through ``save_credentials`` before use. What
cannot be repaired is final: ``AuthenticationError`` with reason
``token_revoked`` or ``credentials_invalid``.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from interlink.connectors.base import SaveCredentials
from interlink.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    PermissionDenied,
    RateLimited,
    SourceDataError,
    SourceRejected,
)
from interlink.connectors.http import RetryPolicy, error_for_response, parse_retry_after, redact_url, send

logger = logging.getLogger(__name__)

CLIENT_API = "/_matrix/client/v3"
# Rate-limit waits add up per request. Synapse's default message limit makes
# each message wait about 5 s once its burst of 10 is spent.
RETRY_POLICY = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=30.0, max_total_wait=120.0)

_AUTH_FAILURE_CODES = ("M_MISSING_TOKEN", "M_USER_DEACTIVATED", "M_USER_LOCKED")


class UnknownToken(AuthenticationError):
    """The homeserver responded with ``M_UNKNOWN_TOKEN`` because the access token expired or was revoked."""

    def __init__(self, message: str, *, status_code: int | None, soft_logout: bool) -> None:
        super().__init__(message, status_code=status_code, reason_code="token_revoked")
        self.soft_logout = soft_logout


class NotFound(SourceRejected):
    """The homeserver responded with ``M_NOT_FOUND`` (or HTTP 404)."""


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classify_response(response: httpx.Response) -> ConnectorError | None:
    """Classify a homeserver response: ``None`` for success, else the typed error for its errcode."""
    status = response.status_code
    if status < 400:
        return None
    body = _error_body(response)
    errcode = str(body.get("errcode", ""))
    where = f"{response.request.method} {redact_url(response.request.url)}"
    detail = f"{where} returned HTTP {status} {errcode or 'without errcode'}: {body.get('error', '')}".rstrip(
        ": "
    )

    if status == 429 or errcode == "M_LIMIT_EXCEEDED":
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None and isinstance(body.get("retry_after_ms"), int | float):
            retry_after = float(body["retry_after_ms"]) / 1000
        return RateLimited(detail, status_code=status, retry_after=retry_after)
    if errcode == "M_UNKNOWN_TOKEN":
        return UnknownToken(detail, status_code=status, soft_logout=body.get("soft_logout") is True)
    if status == 401 or errcode in _AUTH_FAILURE_CODES:
        return AuthenticationError(detail, status_code=status, reason_code="credentials_invalid")
    if status == 404 or errcode == "M_NOT_FOUND":
        return NotFound(detail, status_code=status)
    if status == 403:
        return PermissionDenied(detail, status_code=status)
    if status >= 500:
        return error_for_response(response)
    return SourceRejected(detail, status_code=status)


def normalize_homeserver_url(value: str) -> str:
    """Return the homeserver's base URL without a trailing slash; reject anything but http(s)."""
    text = value.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceRejected(
            f"homeserver_url {value!r} is not an http(s) URL; give the homeserver's base URL, "
            "such as https://matrix.example.org"
        )
    return text


def new_device_id() -> str:
    """Return a device id for Interlink's own logins, recognisable in the user's device list."""
    return f"INTERLINK_{secrets.token_hex(5).upper()}"


class MatrixClient:
    """One connection's session with its homeserver."""

    def __init__(
        self, http: httpx.AsyncClient, credentials: Mapping[str, str], save_credentials: SaveCredentials
    ) -> None:
        self._http = http
        self._save = save_credentials
        self.base_url = normalize_homeserver_url(credentials.get("homeserver_url", ""))
        self._access_token = credentials.get("access_token") or None
        self._refresh_token = credentials.get("refresh_token") or None
        self._username = credentials.get("username") or None
        self._password = credentials.get("password") or None
        self._device_id = credentials.get("device_id") or None
        self._user_id: str | None = None

    async def user_id(self) -> str:
        """Return the account's user id, asking ``/account/whoami`` once."""
        if self._user_id is None:
            whoami = await self.request("GET", "/account/whoami")
            self._user_id = str(whoami["user_id"])
        return self._user_id

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send an authenticated request to the client-server API and return its JSON object."""
        payload = await self.request_json(method, path, params=params, body=body)
        if not isinstance(payload, dict):
            raise SourceDataError(f"{method} {path} returned JSON that is not an object")
        return payload

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send an authenticated request and return its JSON value, whatever its type.

        An ``M_UNKNOWN_TOKEN`` response gets one repair attempt, then the request
        is sent once more; a second ``M_UNKNOWN_TOKEN`` is final.
        """
        if self._access_token is None:
            await self._log_in()
        try:
            return await self._send(method, path, params=params, body=body)
        except UnknownToken as exc:
            await self._repair(exc)
        return await self._send(method, path, params=params, body=body)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        authenticated: bool = True,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._access_token}"} if authenticated else {}
        request = self._http.build_request(
            method, self.base_url + CLIENT_API + path, params=params, json=body, headers=headers
        )
        response = await send(self._http, request, policy=RETRY_POLICY, classify=classify_response)
        try:
            return response.json()
        except ValueError as exc:
            raise SourceDataError(f"{method} {redact_url(request.url)} returned invalid JSON") from exc

    async def _repair(self, error: UnknownToken) -> None:
        kind = "soft logout" if error.soft_logout else "token revoked"
        if self._refresh_token is not None:
            logger.info("matrix.session.refresh reason=%s", kind)
            try:
                await self._refresh()
                return
            except UnknownToken as exc:
                if self._password is None:
                    raise AuthenticationError(
                        "the homeserver rejected the access token and the refresh token; "
                        "reconnect the Matrix account with new credentials",
                        status_code=exc.status_code,
                        reason_code="token_revoked",
                    ) from exc
        if self._password is not None:
            logger.info("matrix.session.login_again reason=%s", kind)
            await self._log_in()
            return
        raise AuthenticationError(
            f"the homeserver rejected the access token ({kind}) and no refresh token or password "
            "is stored; reconnect the Matrix account with a new access token",
            status_code=error.status_code,
            reason_code="token_revoked",
        ) from error

    async def _refresh(self) -> None:
        assert self._refresh_token is not None
        answer = await self._send(
            "POST", "/refresh", body={"refresh_token": self._refresh_token}, authenticated=False
        )
        access_token = _required(answer, "access_token", "/refresh")
        refresh_token = str(answer.get("refresh_token") or self._refresh_token)  # rotation is optional
        await self._save({"access_token": access_token, "refresh_token": refresh_token})
        self._access_token, self._refresh_token = access_token, refresh_token

    async def _log_in(self) -> None:
        if self._username is None or self._password is None:
            raise AuthenticationError(
                "no access token and no username and password are stored; reconnect the Matrix account",
                reason_code="credentials_invalid",
            )
        device_id = self._device_id or new_device_id()
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": self._username},
            "password": self._password,
            "device_id": device_id,
            "initial_device_display_name": "Interlink",
        }
        try:
            answer = await self._send("POST", "/login", body=body, authenticated=False)
        except (PermissionDenied, AuthenticationError) as exc:
            raise AuthenticationError(
                f"the homeserver rejected the password of {self._username!r}; "
                "reconnect the Matrix account with the current password",
                status_code=exc.status_code,
                reason_code="credentials_invalid",
            ) from exc
        access_token = _required(answer, "access_token", "/login")
        await self._save({"access_token": access_token, "device_id": device_id})
        self._access_token, self._device_id = access_token, device_id
        self._user_id = answer.get("user_id") if isinstance(answer.get("user_id"), str) else None
        logger.info("matrix.session.logged_in device_id=%s", device_id)

    async def sync(self, since: str | None, sync_filter: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``/sync`` once without long-polling, with an inline filter."""
        params = {"filter": json.dumps(sync_filter, separators=(",", ":")), "timeout": "0"}
        params["set_presence"] = "offline"
        if since is not None:
            params["since"] = since
        return await self.request("GET", "/sync", params=params)

    async def messages(
        self,
        room_id: str,
        *,
        from_token: str,
        to_token: str | None,
        limit: int,
        event_filter: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Page backwards through a room's history with ``/rooms/{roomId}/messages``."""
        params = {
            "from": from_token,
            "dir": "b",
            "limit": str(limit),
            "filter": json.dumps(event_filter, separators=(",", ":")),
        }
        if to_token is not None:
            params["to"] = to_token
        return await self.request("GET", f"/rooms/{_segment(room_id)}/messages", params=params)

    async def event(self, room_id: str, event_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/rooms/{_segment(room_id)}/event/{_segment(event_id)}")

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        """Return the room's current state events."""
        answer = await self.request_json("GET", f"/rooms/{_segment(room_id)}/state")
        if not isinstance(answer, list):
            raise SourceDataError(f"GET /rooms/{room_id}/state returned JSON that is not an array")
        return [event for event in answer if isinstance(event, dict)]

    async def joined_rooms(self) -> list[str]:
        answer = await self.request("GET", "/joined_rooms")
        return [str(room_id) for room_id in answer.get("joined_rooms", [])]

    async def account_data(self, event_type: str) -> dict[str, Any]:
        """Return the user's global account data of ``event_type``, or ``{}`` when it has none."""
        path = f"/user/{_segment(await self.user_id())}/account_data/{_segment(event_type)}"
        try:
            return await self.request("GET", path)
        except NotFound:
            return {}

    async def send_event(
        self, room_id: str, event_type: str, transaction_id: str, content: Mapping[str, Any]
    ) -> str:
        """Send a room event under a transaction id and return its event id.

        The homeserver answers a repeated transaction id from the same device
        with the first event's id, for as long as it remembers it.
        """
        path = f"/rooms/{_segment(room_id)}/send/{_segment(event_type)}/{_segment(transaction_id)}"
        answer = await self.request("PUT", path, body=content)
        return _required(answer, "event_id", "/send")


def _segment(value: str) -> str:
    return quote(value, safe="")


def _required(answer: Any, key: str, endpoint: str) -> str:
    value = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise SourceDataError(f"{endpoint} returned no {key!r}")
    return value
