"""add connection_health, the health monitor's state per connection

Revision ID: 0006
Revises: 0001
Create Date: 2026-12-05 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connection_health",
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_check_ok", sa.Boolean(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_connection_health_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_connection_health")),
    )
    with op.batch_alter_table("connection_health", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_connection_health_next_check_at"), ["next_check_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("connection_health", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connection_health_next_check_at"))
    op.drop_table("connection_health")
