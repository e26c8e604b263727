"""add room_id to webhook endpoints, for endpoints of kind matrix

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-06 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None


# Plain ALTER TABLE statements, never a batch table rebuild: a rebuild drops webhook_endpoints,
# and with SQLite's foreign keys on that DROP deletes every delivery through ON DELETE CASCADE.
# SQLite runs ADD COLUMN in place, and DROP COLUMN since version 3.35.


def upgrade() -> None:
    op.add_column("webhook_endpoints", sa.Column("room_id", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "room_id")
