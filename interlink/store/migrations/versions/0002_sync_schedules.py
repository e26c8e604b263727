"""add sync_schedules, the next due times of scheduled syncs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_schedules",
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("next_incremental_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_full_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_sync_schedules_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "entity", name=op.f("pk_sync_schedules")),
    )
    with op.batch_alter_table("sync_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_schedules_next_incremental_at"), ["next_incremental_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_sync_schedules_next_full_at"), ["next_full_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sync_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_schedules_next_full_at"))
        batch_op.drop_index(batch_op.f("ix_sync_schedules_next_incremental_at"))
    op.drop_table("sync_schedules")
