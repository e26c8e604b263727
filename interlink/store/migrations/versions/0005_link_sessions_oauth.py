"""add link sessions, OAuth authorizations, OAuth clients and refresh leases

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-06 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("end_user_id", sa.String(length=255), nullable=False),
        sa.Column("end_user_name", sa.String(length=255), nullable=True),
        sa.Column("end_user_email", sa.String(length=255), nullable=True),
        sa.Column("integrations", sa.JSON(), nullable=True),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("redirect_url", sa.Text(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("busy_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result_connection_id", sa.String(length=40), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("webhook_endpoint_id", sa.String(length=40), nullable=True),
        sa.Column("webhook_secret", sa.LargeBinary(), nullable=True),
        sa.Column("exchanged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_link_sessions_token_hash")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_link_sessions_code_hash")),
    )
    op.create_table(
        "oauth_authorizations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("link_session_id", sa.String(length=40), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("integration", sa.String(length=64), nullable=False),
        sa.Column("auth_scheme", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_session_id"],
            ["link_sessions.id"],
            name=op.f("fk_oauth_authorizations_link_session_id_link_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_authorizations")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oauth_authorizations_state_hash")),
    )
    with op.batch_alter_table("oauth_authorizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_authorizations_link_session_id"), ["link_session_id"], unique=False
        )
    op.create_table(
        "oauth_clients",
        sa.Column("integration", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("integration", name=op.f("pk_oauth_clients")),
    )
    op.create_table(
        "oauth_refresh_locks",
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_oauth_refresh_locks_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_oauth_refresh_locks")),
    )


def downgrade() -> None:
    op.drop_table("oauth_refresh_locks")
    op.drop_table("oauth_clients")
    with op.batch_alter_table("oauth_authorizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_authorizations_link_session_id"))
    op.drop_table("oauth_authorizations")
    op.drop_table("link_sessions")
