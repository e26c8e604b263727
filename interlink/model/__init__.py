"""The unified model: entities, their record envelope, ids and content hashing.

This package imports nothing else of Interlink.
"""

from interlink.model.canonical import canonical_json, content_hash
from interlink.model.connection import ConnectionSettings
from interlink.model.entities import (
    Asset,
    Conversation,
    EntityData,
    Location,
    Message,
    Part,
    PurchaseOrder,
    PurchaseOrderLine,
    User,
    Vendor,
    WorkOrder,
    WorkOrderTask,
)
from interlink.model.ids import build_record_id, new_id
from interlink.model.records import ENTITIES, ENTITIES_BY_PATH, Entity, RecordEnvelope, get_entity
from interlink.model.types import Address, DecimalString, Ref, UtcDateTime, format_utc, reference

__all__ = [
    "ENTITIES",
    "ENTITIES_BY_PATH",
    "Address",
    "Asset",
    "ConnectionSettings",
    "Conversation",
    "DecimalString",
    "Entity",
    "EntityData",
    "Location",
    "Message",
    "Part",
    "PurchaseOrder",
    "PurchaseOrderLine",
    "RecordEnvelope",
    "Ref",
    "User",
    "UtcDateTime",
    "Vendor",
    "WorkOrder",
    "WorkOrderTask",
    "build_record_id",
    "canonical_json",
    "content_hash",
    "format_utc",
    "get_entity",
    "new_id",
    "reference",
]
