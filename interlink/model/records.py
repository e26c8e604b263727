"""The record envelope and the registry of unified entities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from pydantic import create_model

from interlink.model.entities import (
    Asset,
    Conversation,
    EntityData,
    Location,
    Message,
    Part,
    PurchaseOrder,
    User,
    Vendor,
    WorkOrder,
)
from interlink.model.ids import RECORD_ID_PREFIXES
from interlink.model.types import UnifiedModel, UtcDateTime


class RecordEnvelope(UnifiedModel):
    """Fields every record carries, whatever its entity."""

    id: str
    remote_id: str
    connection_id: str
    integration: str
    remote_created_at: UtcDateTime | None = None
    remote_updated_at: UtcDateTime | None = None
    created_at: UtcDateTime
    modified_at: UtcDateTime
    deleted: bool = False
    deleted_at: UtcDateTime | None = None
    remote_data: dict[str, Any] | None = None


@dataclass(frozen=True)
class Entity:
    """One unified entity: its names in settings and URLs, and its models."""

    name: str
    path: str
    title: str
    data_model: type[EntityData]
    record_model: type[RecordEnvelope]

    @property
    def id_prefix(self) -> str:
        return RECORD_ID_PREFIXES[self.name]


def _entity(name: str, path: str, data_model: type[EntityData]) -> Entity:
    title = data_model.__name__
    bases: Any = (RecordEnvelope, data_model)  # pydantic's stubs accept one base class only
    record_model = cast(
        type[RecordEnvelope],
        create_model(
            f"{title}Record",
            __base__=bases,
            __doc__=f"A {name.replace('_', ' ')} record as the API returns it.",
        ),
    )
    return Entity(name=name, path=path, title=title, data_model=data_model, record_model=record_model)


ENTITIES: dict[str, Entity] = {
    entity.name: entity
    for entity in (
        _entity("purchase_order", "purchase-orders", PurchaseOrder),
        _entity("work_order", "work-orders", WorkOrder),
        _entity("asset", "assets", Asset),
        _entity("part", "parts", Part),
        _entity("vendor", "vendors", Vendor),
        _entity("location", "locations", Location),
        _entity("user", "users", User),
        _entity("conversation", "conversations", Conversation),
        _entity("message", "messages", Message),
    )
}

ENTITIES_BY_PATH: dict[str, Entity] = {entity.path: entity for entity in ENTITIES.values()}


def get_entity(name: str) -> Entity:
    """Look up an entity by its snake_case name, raising ``KeyError`` with the valid names."""
    try:
        return ENTITIES[name]
    except KeyError:
        valid = ", ".join(sorted(ENTITIES))
        raise KeyError(f"unknown entity {name!r}; valid entities: {valid}") from None
