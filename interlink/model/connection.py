"""Per-connection sync settings, as clients set them and Interlink stores them."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from interlink.model.types import UnifiedModel

MIN_SYNC_FREQUENCY = timedelta(minutes=5)
MAX_SYNC_FREQUENCY = timedelta(days=1)


class ConnectionSettings(UnifiedModel):
    """The sync schedule, entities and historical window of one connection."""

    sync_frequency: timedelta = Field(
        default=timedelta(hours=1),
        description="Time between incremental syncs, as an ISO 8601 duration from PT5M to P1D.",
    )
    full_sync_frequency: timedelta = Field(
        default=timedelta(days=7),
        description="Time between full re-syncs, as an ISO 8601 duration.",
    )
    entities: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Entities to sync (snake_case); null means every entity the integration reads.",
    )
    history_days: int = Field(
        default=365,
        ge=1,
        le=36500,
        description="Historical window of a full sync, in days of the source's change time.",
    )

    @field_validator("sync_frequency")
    @classmethod
    def _check_sync_frequency(cls, value: timedelta) -> timedelta:
        if not MIN_SYNC_FREQUENCY <= value <= MAX_SYNC_FREQUENCY:
            raise ValueError("sync_frequency must be between PT5M and P1D")
        return value

    @field_validator("full_sync_frequency")
    @classmethod
    def _check_full_sync_frequency(cls, value: timedelta) -> timedelta:
        if value < MIN_SYNC_FREQUENCY:
            raise ValueError("full_sync_frequency must be at least PT5M")
        return value
