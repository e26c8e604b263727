"""Request and response bodies of the HTTP API that are not unified entities."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from interlink.model import ConnectionSettings, UtcDateTime

T = TypeVar("T")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListPage(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str
    has_more: bool


class EndUser(Body):
    id: str = Field(min_length=1, max_length=255)
    name: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=255)


class ConnectionCreate(Body):
    integration: str
    end_user: EndUser
    credentials: dict[str, str]
    auth_scheme: str | None = None
    settings: ConnectionSettings = Field(default_factory=ConnectionSettings)


class ConnectionPatch(Body):
    sync_frequency: Any = None
    full_sync_frequency: Any = None
    entities: list[str] | None = None
    history_days: int | None = None
    status: Literal["active", "disabled"] | None = None
    credentials: dict[str, str] | None = None


class EntitySyncState(BaseModel):
    entity: str
    last_success_at: UtcDateTime | None
    last_full_success_at: UtcDateTime | None
    next_sync_at: UtcDateTime | None = Field(
        default=None,
        description="When the next scheduled sync is due, or null while the connection is paused.",
    )
    next_full_sync_at: UtcDateTime | None = Field(
        default=None,
        description="When the next scheduled full sync is due, or null while the connection is paused "
        "and when the entity cannot be read in full.",
    )


class ConnectionOut(BaseModel):
    id: str
    integration: str
    auth_scheme: str
    end_user: EndUser
    status: str
    status_reason: str | None
    status_detail: str | None
    settings: ConnectionSettings
    created_at: UtcDateTime
    updated_at: UtcDateTime
    sync: list[EntitySyncState] = Field(default_factory=list)
    connection_token: str | None = Field(
        default=None, description="Shown once: when the connection is created or its token is replaced."
    )


class HealthOut(BaseModel):
    connection_id: str
    status: str
    status_reason: str | None
    last_check_at: UtcDateTime | None = Field(
        default=None,
        description="When the health monitor last checked the connection; null before the first check.",
    )
    last_check_ok: bool | None = Field(default=None, description="Whether that check succeeded.")
    consecutive_failures: int = Field(default=0, description="Failed checks since the last successful one.")
    next_check_at: UtcDateTime | None = Field(default=None, description="When the next check is due.")
    last_error: str | None = Field(
        default=None, description="The most recent error of a failed sync run or check, kept after recovery."
    )
    last_error_code: str | None = None
    last_error_at: UtcDateTime | None = None
    entities: list[EntitySyncState]


class TokenOut(BaseModel):
    connection_id: str
    connection_token: str


class SyncRequest(Body):
    entities: list[str] | None = None
    mode: Literal["incremental", "full"] = "incremental"


class RunCounts(BaseModel):
    fetched: int
    created: int
    updated: int
    unchanged: int
    deleted: int


class RunOut(BaseModel):
    id: str
    connection_id: str
    entity: str
    mode: str
    trigger: str
    status: str
    counts: RunCounts
    queued_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    error: str | None
    error_code: str | None


class RunList(BaseModel):
    data: list[RunOut]


class CredentialFieldOut(BaseModel):
    name: str
    label: str
    help: str
    secret: bool
    required: bool


class AuthSchemeOut(BaseModel):
    name: str
    label: str
    fields: list[CredentialFieldOut]


class EntityCapabilitiesOut(BaseModel):
    entity: str
    read: bool
    incremental: bool
    full: bool
    detects_deletions: bool
    write: bool


class IntegrationOut(BaseModel):
    name: str
    label: str
    description: str
    auth_schemes: list[AuthSchemeOut]
    entities: list[EntityCapabilitiesOut]


class EventOut(BaseModel):
    id: str
    type: str
    connection_id: str | None
    data: dict[str, Any]
    created_at: datetime
