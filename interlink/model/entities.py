"""The unified entities: one shape per entity, whatever system the record comes from.

Every field is optional, because sources differ in what they record. A field
a source cannot fill is ``None``. Each
normalized status also keeps the source's own value in ``remote_status``.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from interlink.model.types import Address, DecimalString, Ref, UnifiedModel, UtcDateTime


class EntityData(UnifiedModel):
    """The entity's own fields, without Interlink's envelope."""


class PurchaseOrderLine(UnifiedModel):
    remote_id: str | None = None
    line_number: int | None = None
    part: Ref | None = None
    description: str | None = None
    quantity: DecimalString | None = None
    received_quantity: DecimalString | None = None
    unit: str | None = None
    unit_price: DecimalString | None = None
    discount: DecimalString | None = None
    tax_amount: DecimalString | None = None
    line_total: DecimalString | None = None
    expected_delivery_date: date | None = None
    status: Literal["open", "partially_received", "received", "cancelled"] | None = None


class PurchaseOrder(EntityData):
    number: str | None = None
    title: str | None = None
    description: str | None = None
    status: (
        Literal[
            "draft",
            "pending_approval",
            "approved",
            "ordered",
            "partially_received",
            "received",
            "closed",
            "cancelled",
        ]
        | None
    ) = None
    remote_status: str | None = None
    vendor: Ref | None = None
    buyer: Ref | None = None
    site: Ref | None = None
    order_date: date | None = None
    expected_delivery_date: date | None = None
    approved_at: UtcDateTime | None = None
    closed_at: UtcDateTime | None = None
    currency: str | None = None
    total_net: DecimalString | None = None
    total_tax: DecimalString | None = None
    total_gross: DecimalString | None = None
    payment_terms: str | None = None
    ship_to: Address | None = None
    bill_to: Address | None = None
    notes: str | None = None
    lines: list[PurchaseOrderLine] = Field(default_factory=list)


class WorkOrderTask(UnifiedModel):
    remote_id: str | None = None
    sequence: int | None = None
    description: str | None = None
    status: Literal["open", "in_progress", "completed", "skipped"] | None = None
    estimated_hours: DecimalString | None = None
    actual_hours: DecimalString | None = None


class WorkOrder(EntityData):
    number: str | None = None
    title: str | None = None
    description: str | None = None
    status: (
        Literal["open", "scheduled", "in_progress", "on_hold", "completed", "cancelled", "closed"] | None
    ) = None
    remote_status: str | None = None
    priority: Literal["low", "medium", "high", "urgent"] | None = None
    remote_priority: str | None = None
    type: Literal["corrective", "preventive", "inspection", "emergency", "other"] | None = None
    asset: Ref | None = None
    location: Ref | None = None
    assignees: list[Ref] = Field(default_factory=list)
    requested_by: Ref | None = None
    parent: Ref | None = None
    scheduled_start_at: UtcDateTime | None = None
    due_date: date | None = None
    started_at: UtcDateTime | None = None
    completed_at: UtcDateTime | None = None
    estimated_hours: DecimalString | None = None
    actual_hours: DecimalString | None = None
    tasks: list[WorkOrderTask] = Field(default_factory=list)


class Asset(EntityData):
    name: str | None = None
    number: str | None = None
    description: str | None = None
    status: Literal["active", "inactive", "under_maintenance", "retired"] | None = None
    remote_status: str | None = None
    category: str | None = None
    location: Ref | None = None
    parent: Ref | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    installed_at: UtcDateTime | None = None
    purchase_cost: DecimalString | None = None
    currency: str | None = None


class Part(EntityData):
    number: str | None = None
    name: str | None = None
    description: str | None = None
    type: Literal["stock", "non_stock", "service"] | None = None
    unit: str | None = None
    unit_cost: DecimalString | None = None
    currency: str | None = None
    category: str | None = None
    manufacturer: str | None = None
    manufacturer_part_number: str | None = None
    active: bool | None = None


class Vendor(EntityData):
    number: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    website: str | None = None
    tax_id: str | None = None
    currency: str | None = None
    address: Address | None = None
    active: bool | None = None


class Location(EntityData):
    name: str | None = None
    code: str | None = None
    type: Literal["site", "building", "area", "storeroom", "other"] | None = None
    parent: Ref | None = None
    address: Address | None = None


class User(EntityData):
    name: str | None = None
    email: str | None = None
    username: str | None = None
    title: str | None = None
    active: bool | None = None


class Conversation(EntityData):
    name: str | None = None
    topic: str | None = None
    type: Literal["room", "direct"] | None = None
    member_count: int | None = None
    encrypted: bool | None = None


class Message(EntityData):
    conversation: Ref | None = None
    sender: Ref | None = None
    body: str | None = None
    body_html: str | None = None
    kind: Literal["text", "notice", "emote", "file", "image", "other"] | None = None
    sent_at: UtcDateTime | None = None
    edited_at: UtcDateTime | None = None
    reply_to: Ref | None = None
    thread_root: Ref | None = None
