"""Link sessions of the hosted connect flow and the OAuth authorizations started from them.

A session moves through three steps, each a conditional update so that two
requests racing for the same step cannot both win. A submission claims it
(``hold_session``). Completing it stores the hash of a one-time code
(``complete_session``). The exchange consumes that code once
(``exchange_code``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from interlink.model import new_id
from interlink.store.tables import link_sessions, oauth_authorizations


@dataclass(frozen=True)
class LinkSessionRow:
    id: str
    token_hash: str
    end_user_id: str
    end_user_name: str | None
    end_user_email: str | None
    integrations: list[str] | None
    connection_id: str | None
    redirect_url: str | None
    webhook_url: str | None
    state: str | None
    created_at: datetime
    expires_at: datetime
    busy_until: datetime | None
    completed_at: datetime | None
    result_connection_id: str | None
    code_hash: str | None
    code_expires_at: datetime | None
    webhook_endpoint_id: str | None
    webhook_secret: bytes | None
    exchanged_at: datetime | None


@dataclass(frozen=True)
class OAuthAuthorizationRow:
    id: str
    link_session_id: str
    state_hash: str
    browser_hash: str
    integration: str
    auth_scheme: str
    sealed: bytes
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


def _session(mapping: Any) -> LinkSessionRow:
    return LinkSessionRow(**{name: mapping[name] for name in LinkSessionRow.__dataclass_fields__})


def _authorization(mapping: Any) -> OAuthAuthorizationRow:
    names = OAuthAuthorizationRow.__dataclass_fields__
    return OAuthAuthorizationRow(**{name: mapping[name] for name in names})


async def insert_session(
    connection: AsyncConnection,
    *,
    token_hash: str,
    end_user_id: str,
    end_user_name: str | None,
    end_user_email: str | None,
    integrations: Sequence[str] | None,
    connection_id: str | None,
    redirect_url: str | None,
    webhook_url: str | None,
    state: str | None,
    now: datetime,
    expires_at: datetime,
) -> LinkSessionRow:
    session_id = new_id("lks")
    await connection.execute(
        insert(link_sessions).values(
            id=session_id,
            token_hash=token_hash,
            end_user_id=end_user_id,
            end_user_name=end_user_name,
            end_user_email=end_user_email,
            integrations=list(integrations) if integrations is not None else None,
            connection_id=connection_id,
            redirect_url=redirect_url,
            webhook_url=webhook_url,
            state=state,
            created_at=now,
            expires_at=expires_at,
        )
    )
    row = await get_session(connection, session_id)
    assert row is not None
    return row


async def get_session(connection: AsyncConnection, session_id: str) -> LinkSessionRow | None:
    query = select(link_sessions).where(link_sessions.c.id == session_id)
    row = (await connection.execute(query)).mappings().first()
    return _session(row) if row else None


async def find_session_by_token(connection: AsyncConnection, token_hash: str) -> LinkSessionRow | None:
    query = select(link_sessions).where(link_sessions.c.token_hash == token_hash)
    row = (await connection.execute(query)).mappings().first()
    return _session(row) if row else None


async def hold_session(
    connection: AsyncConnection, session_id: str, *, now: datetime, until: datetime
) -> bool:
    """Claim an open, unexpired session for one submission; ``False`` when another submission has it."""
    result = await connection.execute(
        update(link_sessions)
        .where(
            link_sessions.c.id == session_id,
            link_sessions.c.completed_at.is_(None),
            link_sessions.c.expires_at > now,
            or_(link_sessions.c.busy_until.is_(None), link_sessions.c.busy_until <= now),
        )
        .values(busy_until=until)
        .returning(link_sessions.c.id)
    )
    return result.first() is not None


async def release_session(connection: AsyncConnection, session_id: str) -> None:
    await connection.execute(
        update(link_sessions).where(link_sessions.c.id == session_id).values(busy_until=None)
    )


async def complete_session(
    connection: AsyncConnection,
    session_id: str,
    *,
    connection_id: str,
    code_hash: str,
    code_expires_at: datetime,
    webhook_endpoint_id: str | None,
    webhook_secret: bytes | None,
    now: datetime,
) -> bool:
    """Mark the session used and store the one-time code; ``False`` when it was completed already."""
    result = await connection.execute(
        update(link_sessions)
        .where(link_sessions.c.id == session_id, link_sessions.c.completed_at.is_(None))
        .values(
            completed_at=now,
            busy_until=None,
            result_connection_id=connection_id,
            code_hash=code_hash,
            code_expires_at=code_expires_at,
            webhook_endpoint_id=webhook_endpoint_id,
            webhook_secret=webhook_secret,
        )
        .returning(link_sessions.c.id)
    )
    return result.first() is not None


async def exchange_code(
    connection: AsyncConnection, code_hash: str, *, now: datetime
) -> LinkSessionRow | None:
    """Consume a one-time code: return its session, with the sealed webhook secret, and forget the secret.

    Returns ``None`` for an unknown, expired or already exchanged code.
    """
    claimed = await connection.execute(
        update(link_sessions)
        .where(
            link_sessions.c.code_hash == code_hash,
            link_sessions.c.exchanged_at.is_(None),
            link_sessions.c.code_expires_at > now,
        )
        .values(exchanged_at=now)
        .returning(link_sessions.c.id)
    )
    session_id = claimed.scalar_one_or_none()
    if session_id is None:
        return None
    row = await get_session(connection, session_id)
    await connection.execute(
        update(link_sessions).where(link_sessions.c.id == session_id).values(webhook_secret=None)
    )
    return row


async def insert_authorization(
    connection: AsyncConnection,
    *,
    link_session_id: str,
    state_hash: str,
    browser_hash: str,
    integration: str,
    auth_scheme: str,
    sealed: bytes,
    now: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        insert(oauth_authorizations).values(
            id=new_id("oaz"),
            link_session_id=link_session_id,
            state_hash=state_hash,
            browser_hash=browser_hash,
            integration=integration,
            auth_scheme=auth_scheme,
            sealed=sealed,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def use_authorization(
    connection: AsyncConnection, state_hash: str, *, now: datetime
) -> OAuthAuthorizationRow | None:
    """Consume the pending authorization with this state; ``None`` when unknown, expired or used."""
    claimed = await connection.execute(
        update(oauth_authorizations)
        .where(
            oauth_authorizations.c.state_hash == state_hash,
            oauth_authorizations.c.used_at.is_(None),
            oauth_authorizations.c.expires_at > now,
        )
        .values(used_at=now)
        .returning(oauth_authorizations.c.id)
    )
    authorization_id = claimed.scalar_one_or_none()
    if authorization_id is None:
        return None
    query = select(oauth_authorizations).where(oauth_authorizations.c.id == authorization_id)
    row = (await connection.execute(query)).mappings().first()
    return _authorization(row) if row else None
