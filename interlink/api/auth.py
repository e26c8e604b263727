"""Bearer authentication: operator API keys (``ilk_``) and connection tokens (``ilc_``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from interlink.api.problems import Problem
from interlink.api.services import Services, get_services
from interlink.crypto import hash_token
from interlink.model import format_utc
from interlink.store.api_keys import find_valid_api_key
from interlink.store.connections import connection_for_token


@dataclass(frozen=True)
class Principal:
    """The caller: an operator with full access, or one connection's token."""

    api_key_id: str | None = None
    connection_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.api_key_id is not None

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Problem(
                403, "forbidden", "this call needs an operator API key (ilk_...), not a connection token"
            )

    def check_connection(self, connection_id: str) -> None:
        """Hide other connections from a connection token: they return 404, as if absent."""
        if self.connection_id is not None and connection_id != self.connection_id:
            raise Problem(404, "not-found", f"connection {connection_id} not found")

    def check_connection_filter(self, connection_id: str | None) -> str | None:
        """Return the connection filter to apply; a token naming another connection gets 403."""
        if self.connection_id is None:
            return connection_id
        if connection_id is not None and connection_id != self.connection_id:
            raise Problem(403, "forbidden", "a connection token may only read its own connection's records")
        return self.connection_id


_UNAUTHORIZED = "send an operator API key or a connection token as 'Authorization: Bearer <token>'"


async def authenticate(request: Request, services: Annotated[Services, Depends(get_services)]) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "unauthorized", f"missing bearer token; {_UNAUTHORIZED}")
    token = token.strip()
    digest = hash_token(token)
    async with services.db.read() as db:
        if token.startswith("ilk_"):
            lookup = await find_valid_api_key(db, digest, services.clock())
            if lookup.key_id is not None:
                return Principal(api_key_id=lookup.key_id)
            if lookup.expired_at is not None:
                raise Problem(
                    401,
                    "unauthorized",
                    f"the API key {token[:8]}... expired at {format_utc(lookup.expired_at)}; "
                    "create a new one with: interlink api-keys create",
                )
        elif token.startswith("ilc_"):
            connection_id = await connection_for_token(db, digest)
            if connection_id is not None:
                return Principal(connection_id=connection_id)
    raise Problem(401, "unauthorized", f"the token is invalid, expired or revoked; {_UNAUTHORIZED}")


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
