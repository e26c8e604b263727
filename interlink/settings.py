"""Configuration from ``INTERLINK_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Interlink's configuration; every field is read from ``INTERLINK_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="INTERLINK_", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'interlink.sqlite3'}",
        description="SQLAlchemy URL of the store: sqlite:///PATH (default) or postgresql://...",
    )
    broker_url: str | None = Field(
        default=None, description="Redis URL for Dramatiq; unset: in-process queue."
    )
    secret_key: str = Field(
        default="",
        description="Comma-separated Fernet keys: the first encrypts, all decrypt.",
        repr=False,
    )
    base_url: str = Field(default="http://127.0.0.1:8000", description="Public URL of this Interlink.")
    webhook_allow_private: bool = False
    webhook_allow_http: bool = False
    webhook_ca_bundle: str | None = Field(
        default=None,
        description="PEM file of extra CA certificates trusted for webhook endpoints, beside the public CAs.",
    )
    workers: int = Field(default=4, ge=1, le=64, description="Sync runs executed at once in this process.")
    lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a run's lease lasts without a heartbeat."
    )
    log_format: str = Field(default="console", pattern="^(console|json)$")
    log_level: str = "INFO"
