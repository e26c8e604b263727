"""The database schema, in SQLAlchemy Core. Alembic migrations must match it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC time on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; Interlink stores aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A one-row counter behind every change sequence. Each writing transaction takes
# its number by updating this row, which holds the row lock until commit, so
# numbers are handed out in commit order and a reader paging by sequence never
# sees a lower number commit after a higher one. Rows written by one transaction
# share its number; readers page by (change_seq, pk).
change_counter = Table(
    "change_counter",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

connections = Table(
    "connections",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("integration", String(64), nullable=False),
    Column("auth_scheme", String(64), nullable=False),
    Column("end_user_id", String(255), nullable=False, index=True),
    Column("end_user_name", String(255)),
    Column("end_user_email", String(255)),
    Column("credentials", LargeBinary, nullable=False),  # Fernet token
    Column("status", String(32), nullable=False),
    Column("status_reason", String(64)),
    Column("status_detail", Text),
    Column("settings", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

connection_tokens = Table(
    "connection_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "connection_id",
        String(40),
        ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
)

records = Table(
    "records",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("connection_id", String(40), ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("remote_id", String(512), nullable=False),
    Column("data", JSON, nullable=False),
    Column("raw", JSON),
    Column("content_hash", String(64), nullable=False),
    Column("remote_created_at", UtcDateTime),
    Column("remote_updated_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("modified_at", UtcDateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("deleted_at", UtcDateTime),
    Column("change_seq", BigInteger, nullable=False),
    UniqueConstraint("connection_id", "entity", "remote_id"),
    Index(None, "entity", "change_seq", "pk"),
    Index(None, "connection_id", "entity", "change_seq", "pk"),
)

sync_states = Table(
    "sync_states",
    metadata,
    Column("connection_id", String(40), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("cursor", Text),
    Column("last_success_at", UtcDateTime),
    Column("last_full_success_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("connection_id", String(40), ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("fetched", Integer, nullable=False, default=0),
    Column("created", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("deleted", Integer, nullable=False, default=0),
    Column("queued_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("error", Text),
    Column("error_code", String(64)),
    # The page-level cursor a full pass has reached, so a crashed full run resumes.
    Column("full_cursor", Text),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UtcDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Index(None, "connection_id", "entity", "status"),
    Index(None, "connection_id", "queued_at"),
    Index(None, "status", "lease_expires_at"),
    # At most one run waits and at most one runs per (connection, entity).
    Index(
        "uq_sync_runs_one_queued",
        "connection_id",
        "entity",
        unique=True,
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
    Index(
        "uq_sync_runs_one_running",
        "connection_id",
        "entity",
        unique=True,
        sqlite_where=text("status = 'running'"),
        postgresql_where=text("status = 'running'"),
    ),
)

# Remote ids a full pass has seen, so deletion reconciliation never holds them in memory.
sync_run_seen = Table(
    "sync_run_seen",
    metadata,
    Column("run_id", String(40), ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("remote_id", String(512), primary_key=True),
)

events = Table(
    "events",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("id", String(40), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("connection_id", String(40), index=True),
    Column("data", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "seq", "pk"),
)

# When each (connection, entity) is next due for a scheduled incremental and full
# sync. The scheduler advances a row in the transaction that queues its run, so a
# restart neither skips nor repeats a due sync.
sync_schedules = Table(
    "sync_schedules",
    metadata,
    Column("connection_id", String(40), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("next_incremental_at", UtcDateTime, nullable=False),
    # Null when the integration cannot read the entity in full.
    Column("next_full_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "next_incremental_at"),
    Index(None, "next_full_at"),
)

# Webhook endpoints: where events are delivered, and the signing secrets.
# ``connection_id`` has no foreign key on purpose: an endpoint of a deleted
# connection must still receive that connection's ``connection.deleted`` event.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    # "https" posts signed requests to ``url``. "matrix" posts messages to the room ``room_id``
    # through the Matrix connection ``connection_id``, and its ``url`` is the room's matrix: URI.
    Column("kind", String(16), nullable=False, server_default="https"),
    Column("url", Text, nullable=False),
    Column("description", Text),
    Column("event_types", JSON, nullable=False),
    # For kind "https", only this connection's events are sent. For kind "matrix", it posts them.
    Column("connection_id", String(40), index=True),
    # A Fernet token, or empty for kind "matrix", which signs nothing.
    Column("secret", LargeBinary, nullable=False),
    # The secret replaced by the last rotation, still used to sign until it expires.
    Column("previous_secret", LargeBinary),
    Column("previous_secret_expires_at", UtcDateTime),
    Column("status", String(16), nullable=False),
    Column("disabled_reason", String(64)),
    Column("disabled_at", UtcDateTime),
    # Start of the current run of failed attempts; cleared by a success.
    Column("failing_since", UtcDateTime),
    # The endpoint receives events whose change number is above this one.
    Column("start_seq", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The Matrix room of a "matrix" endpoint, null for other kinds.
    Column("room_id", String(255)),
)

# One row per (event, endpoint): the state of delivering that event there.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("event_id", String(40), nullable=False),
    Column(
        "endpoint_id",
        String(40),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UtcDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    UniqueConstraint("event_id", "endpoint_id"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "endpoint_id", "status"),
)

# The delivery log: one row per HTTP attempt.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("delivery_id", String(40), nullable=False, index=True),
    Column("endpoint_id", String(40), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer, nullable=False),
    Column("error", String(300)),
    Column("succeeded", Boolean, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Index(None, "endpoint_id", "pk"),
)

# The outbox position up to which events have been fanned out into deliveries.
webhook_fanout = Table(
    "webhook_fanout",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("pk", BigInteger, nullable=False),
)

# Idempotency keys of API writes, with the record each write produced, so a
# retried request answers with that record instead of writing again, also
# after a restart of Interlink or of the source.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("connection_id", String(40), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    # SHA-256 of the canonical request, so a key reused for another body is rejected.
    Column("request_hash", String(64), nullable=False),
    Column("record_id", String(40), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# The health monitor's state per connection: the last cheap authenticated
# check, the current run of failed checks, and when the next check is due.
# A process claims a due check by moving ``next_check_at`` forward, so several
# processes share the monitoring without checking a connection twice.
connection_health = Table(
    "connection_health",
    metadata,
    Column("connection_id", String(40), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("next_check_at", UtcDateTime, nullable=False),
    Column("last_check_at", UtcDateTime),
    Column("last_check_ok", Boolean),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    # Start of the current run of failed checks; cleared by a success.
    Column("failing_since", UtcDateTime),
    # The last failed check, kept after later successes.
    Column("last_error_code", String(64)),
    Column("last_error", Text),
    Column("last_error_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "next_check_at"),
)

# Sessions of the hosted connect flow. Only hashes of the link token and of the
# one-time code are stored. ``connection_id`` names the connection a session
# reconnects. It has no foreign key, so deleting that connection leaves the
# session to fail with a message instead of blocking the deletion.
link_sessions = Table(
    "link_sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("end_user_id", String(255), nullable=False),
    Column("end_user_name", String(255)),
    Column("end_user_email", String(255)),
    # Integration names the user may choose from; null allows every integration.
    Column("integrations", JSON),
    Column("connection_id", String(40)),
    Column("redirect_url", Text),
    Column("webhook_url", Text),
    Column("state", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # A submission being checked keeps the session to itself until then, so
    # that a double submit cannot make two connections.
    Column("busy_until", UtcDateTime),
    Column("completed_at", UtcDateTime),
    Column("result_connection_id", String(40)),
    Column("code_hash", String(64), unique=True),
    Column("code_expires_at", UtcDateTime),
    Column("webhook_endpoint_id", String(40)),
    # Fernet token of the webhook endpoint's secret, cleared by the exchange.
    Column("webhook_secret", LargeBinary),
    Column("exchanged_at", UtcDateTime),
)

# Authorization requests sent to an identity provider, waiting for its redirect back.
oauth_authorizations = Table(
    "oauth_authorizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "link_session_id",
        String(40),
        ForeignKey("link_sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("state_hash", String(64), nullable=False, unique=True),
    # Hash of the cookie that binds the request to the browser that started it.
    Column("browser_hash", String(64), nullable=False),
    Column("integration", String(64), nullable=False),
    Column("auth_scheme", String(64), nullable=False),
    # Fernet token of the PKCE verifier, the redirect URI and the fields the user typed.
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime),
)

# The operator's OAuth client per integration, as a Fernet token.
oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("integration", String(64), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One lease per connection on refreshing its OAuth tokens, so that processes
# sharing the database refresh a token once. A lease whose ``expires_at``
# passed is free again, so a holder that died blocks no one for long.
oauth_refresh_locks = Table(
    "oauth_refresh_locks",
    metadata,
    Column("connection_id", String(40), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("owner", String(64)),
    Column("expires_at", UtcDateTime),
)
