"""A real Synapse homeserver for tests and benchmarks, and a Matrix user that acts against it.

``SynapseServer`` writes an offline configuration: one listener with only
the ``client`` resource, bound to 127.0.0.1 on a free port, and SQLite, with
no federation, presence, metrics, URL previews or key servers. It starts
``synapse.app.homeserver`` from this virtualenv, waits for
``/_matrix/client/versions``, registers users with
``register_new_matrix_user -k SECRET`` and stops the process by its PID.

Rate limits: every ``rc_*`` limiter except ``rc_message`` is raised in the
configuration. ``rc_message`` keeps Synapse's default (0.2 messages per
second, burst of 10), and each user is exempted from it through the admin
API ``override_ratelimit`` unless registered with ``rate_limited=True``.
So one Synapse serves both the ordinary tests and the test that needs
``M_LIMIT_EXCEEDED`` from Synapse's default message limit.

``MatrixUser`` is a small client-server API client that tests use to create
rooms, send, edit and redact messages, and log out, as a person would.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

logger = logging.getLogger(__name__)

SERVER_NAME = "interlink.test"
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0
_RAISED_LIMIT = {"per_second": 10_000, "burst_count": 100_000}


class SynapseUnavailable(RuntimeError):
    """Synapse is not installed in this virtualenv."""


def synapse_installed() -> bool:
    """Return whether the ``matrix-synapse`` package can be imported here."""
    return importlib.util.find_spec("synapse") is not None


def _script(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise SynapseUnavailable(f"{path} is missing; install matrix-synapse into this virtualenv")
    return str(path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _raised_rate_limits() -> dict[str, Any]:
    """Return every ``rc_*`` setting except ``rc_message``, raised far above any test's load."""
    return {
        "rc_registration": _RAISED_LIMIT,
        "rc_registration_token_validity": _RAISED_LIMIT,
        "rc_login": {
            "address": _RAISED_LIMIT,
            "account": _RAISED_LIMIT,
            "failed_attempts": _RAISED_LIMIT,
        },
        "rc_admin_redaction": _RAISED_LIMIT,
        "rc_joins": {"local": _RAISED_LIMIT, "remote": _RAISED_LIMIT},
        "rc_joins_per_room": _RAISED_LIMIT,
        "rc_3pid_validation": _RAISED_LIMIT,
        "rc_invites": {"per_room": _RAISED_LIMIT, "per_user": _RAISED_LIMIT, "per_issuer": _RAISED_LIMIT},
        "rc_third_party_invite": _RAISED_LIMIT,
        "rc_room_creation": _RAISED_LIMIT,
        "rc_profile": _RAISED_LIMIT,
        "rc_presence": {"per_user": _RAISED_LIMIT},
        "rc_delayed_event_mgmt": _RAISED_LIMIT,
        "rc_reports": _RAISED_LIMIT,
        "rc_user_directory": _RAISED_LIMIT,
        "rc_media_create": _RAISED_LIMIT,
        "rc_key_requests": _RAISED_LIMIT,
        "rc_federation": {"window_size": 1000, "sleep_limit": 10_000, "reject_limit": 10_000},
    }


@dataclass
class SynapseServer:
    """One Synapse process on 127.0.0.1, configured for offline tests."""

    directory: Path
    # How long an access token that came with a refresh token lives. Short,
    # so that tests see a soft logout after a brief wait.
    refreshable_token_lifetime: str = "3s"
    port: int = field(default_factory=free_port)
    shared_secret: str = field(default_factory=lambda: secrets.token_hex(24))
    process: subprocess.Popen[bytes] | None = None
    admin_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "homeserver.yaml"

    def write_config(self) -> None:
        """Write the configuration, the log configuration and a signing key into ``directory``."""
        from signedjson.key import generate_signing_key, write_signing_keys

        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "media").mkdir(exist_ok=True)
        log_config = self.directory / "log.yaml"
        log_config.write_text(
            json.dumps(
                {
                    "version": 1,
                    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
                    "handlers": {
                        "file": {
                            "class": "logging.FileHandler",
                            "formatter": "plain",
                            "filename": str(self.directory / "homeserver.log"),
                        }
                    },
                    "root": {"level": "WARNING", "handlers": ["file"]},
                    "disable_existing_loggers": False,
                }
            )
        )
        signing_key = self.directory / "signing.key"
        if not signing_key.exists():
            with signing_key.open("w") as handle:
                write_signing_keys(handle, [generate_signing_key("a_1")])
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "pid_file": str(self.directory / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(self.directory / "homeserver.db")}},
            "log_config": str(log_config),
            "media_store_path": str(self.directory / "media"),
            "signing_key_path": str(signing_key),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "url_preview_enabled": False,
            "federation_domain_whitelist": [],
            "enable_metrics": False,
            "presence": {"enabled": False},
            "bcrypt_rounds": 4,
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": secrets.token_urlsafe(32),
            "form_secret": secrets.token_urlsafe(32),
            "refreshable_access_token_lifetime": self.refreshable_token_lifetime,
            **_raised_rate_limits(),
        }
        # JSON is valid YAML, so no YAML writer is needed.
        self.config_path.write_text(json.dumps(config, indent=2))

    async def start(self) -> None:
        """Start Synapse and wait until it responds, then register the admin user on the first start."""
        if not synapse_installed():
            raise SynapseUnavailable("matrix-synapse is not installed in this virtualenv")
        if not self.config_path.exists():
            self.write_config()
        self.process = self._spawn()
        await self._wait_ready()
        logger.info("synapse.started pid=%d url=%s", self.process.pid, self.url)
        if self.admin_token is None:
            await self.register("admin", "admin-password", admin=True)
            self.admin_token = await login(self.url, "admin", "admin-password")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.directory / "stdout.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"synapse exited with code {self.process.returncode}; "
                        f"see {self.directory / 'stdout.log'} and {self.directory / 'homeserver.log'}"
                    )
                try:
                    response = await client.get("/_matrix/client/versions")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"synapse did not answer on {self.url} within {_START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Stop the process this object started, by its PID: SIGTERM, then SIGKILL after a timeout."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=_STOP_TIMEOUT_S)
        logger.info("synapse.stopped pid=%d", process.pid)

    async def restart(self) -> None:
        """Stop and start again on the same port and database; Synapse's in-memory caches are lost."""
        self.stop()
        await self.start()

    async def register(
        self, localpart: str, password: str, *, admin: bool = False, rate_limited: bool = False
    ) -> str:
        """Register a user with ``register_new_matrix_user -k SECRET`` and return the user id.

        Unless ``rate_limited`` is set, the user is exempted from the message
        rate limit, which this configuration leaves at Synapse's default.
        """
        command = [
            _script("register_new_matrix_user"),
            "-k",
            self.shared_secret,
            "-u",
            localpart,
            "-p",
            password,
            "--admin" if admin else "--no-admin",
            self.url,
        ]
        completed = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"register_new_matrix_user failed for {localpart}: {completed.stderr or completed.stdout}"
            )
        user_id = f"@{localpart}:{SERVER_NAME}"
        if not rate_limited and self.admin_token is not None:
            await self.exempt_from_rate_limits(user_id)
        return user_id

    async def exempt_from_rate_limits(self, user_id: str) -> None:
        """Switch off every rate limit for ``user_id`` (an override of 0 messages per second)."""
        await self.admin_request(
            "POST",
            f"/_synapse/admin/v1/users/{quote(user_id)}/override_ratelimit",
            {"messages_per_second": 0, "burst_count": 0},
        )

    async def admin_request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        assert self.admin_token is not None, "start the server first"
        async with httpx.AsyncClient(base_url=self.url, timeout=30.0) as client:
            response = await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {self.admin_token}"}
            )
        response.raise_for_status()
        return response.json()


async def login(
    url: str,
    localpart: str,
    password: str,
    *,
    device_id: str | None = None,
    refresh_token: bool = False,
    full: bool = False,
) -> Any:
    """Log in with a password; return the access token, or the whole response with ``full``."""
    body: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
        "refresh_token": refresh_token,
    }
    if device_id is not None:
        body["device_id"] = device_id
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        response = await client.post("/_matrix/client/v3/login", json=body)
    response.raise_for_status()
    payload = response.json()
    return payload if full else payload["access_token"]


@dataclass
class MatrixUser:
    """A person using a Matrix account: creates rooms, sends, edits and redacts messages."""

    url: str
    user_id: str
    access_token: str

    @classmethod
    async def create(cls, server: SynapseServer, localpart: str, *, rate_limited: bool = False) -> MatrixUser:
        password = f"{localpart}-password"
        user_id = await server.register(localpart, password, rate_limited=rate_limited)
        token = await login(server.url, localpart, password)
        return cls(server.url, user_id, token)

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]

    @property
    def password(self) -> str:
        return f"{self.localpart}-password"

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.access_token}"}
        url = f"{self.url}/_matrix/client/v3{path}"
        if client is not None:
            response = await client.request(method, url, json=body, params=params, headers=headers)
        else:
            async with httpx.AsyncClient(timeout=60.0) as own:
                response = await own.request(method, url, json=body, params=params, headers=headers)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json()

    async def create_room(
        self,
        name: str | None = None,
        *,
        topic: str | None = None,
        invite: list[MatrixUser] | None = None,
        direct: bool = False,
        encrypted: bool = False,
    ) -> str:
        body: dict[str, Any] = {"preset": "private_chat", "is_direct": direct}
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        if invite:
            body["invite"] = [user.user_id for user in invite]
        if encrypted:
            body["initial_state"] = [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ]
        room_id: str = (await self.request("POST", "/createRoom", body))["room_id"]
        for user in invite or []:
            await user.join(room_id)
        if direct and invite:
            await self.mark_direct(room_id, invite[0])
            await invite[0].mark_direct(room_id, self)
        return room_id

    async def mark_direct(self, room_id: str, other: MatrixUser) -> None:
        """Add the room to this user's ``m.direct`` account data, as clients do for a direct chat."""
        path = f"/user/{quote(self.user_id)}/account_data/m.direct"
        await self.request("PUT", path, {other.user_id: [room_id]})

    async def join(self, room_id: str) -> None:
        await self.request("POST", f"/join/{quote(room_id)}", {})

    async def leave(self, room_id: str) -> None:
        await self.request("POST", f"/rooms/{quote(room_id)}/leave", {})

    async def send(
        self,
        room_id: str,
        content: Mapping[str, Any],
        *,
        event_type: str = "m.room.message",
        client: httpx.AsyncClient | None = None,
    ) -> str:
        path = f"/rooms/{quote(room_id)}/send/{event_type}/{uuid.uuid4().hex}"
        event_id: str = (await self.request("PUT", path, content, client=client))["event_id"]
        return event_id

    async def say(self, room_id: str, body: str, *, client: httpx.AsyncClient | None = None) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": body}, client=client)

    async def edit(self, room_id: str, event_id: str, body: str) -> str:
        return await self.send(
            room_id,
            {
                "msgtype": "m.text",
                "body": f"* {body}",
                "m.new_content": {"msgtype": "m.text", "body": body},
                "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
            },
        )

    async def reply(self, room_id: str, event_id: str, body: str) -> str:
        return await self.send(
            room_id,
            {"msgtype": "m.text", "body": body, "m.relates_to": {"m.in_reply_to": {"event_id": event_id}}},
        )

    async def reply_in_thread(self, room_id: str, root_id: str, body: str) -> str:
        return await self.send(
            room_id,
            {
                "msgtype": "m.text",
                "body": body,
                "m.relates_to": {
                    "rel_type": "m.thread",
                    "event_id": root_id,
                    "is_falling_back": True,
                    "m.in_reply_to": {"event_id": root_id},
                },
            },
        )

    async def redact(self, room_id: str, event_id: str, reason: str = "removed") -> str:
        path = f"/rooms/{quote(room_id)}/redact/{quote(event_id)}/{uuid.uuid4().hex}"
        redaction_id: str = (await self.request("PUT", path, {"reason": reason}))["event_id"]
        return redaction_id

    async def room_events(self, room_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Return up to ``limit`` of the room's newest message events, newest first."""
        params = {"dir": "b", "limit": str(limit), "filter": json.dumps({"types": ["m.room.message"]})}
        chunk: list[dict[str, Any]] = (
            await self.request("GET", f"/rooms/{quote(room_id)}/messages", params=params)
        )["chunk"]
        return chunk

    async def logout(self) -> None:
        await self.request("POST", "/logout", {})
