"""outbound delivery queue on messages, WhatsApp message templates

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-15 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Replies stored before this revision were sent (or failed) in their request: none
    # is due for the worker.
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(
            sa.Column("delivery_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("delivery_due_at", sa.DateTime(timezone=True)))
        batch_op.create_index(
            batch_op.f("ix_messages_delivery_due_at"),
            ["delivery_due_at"],
            unique=False,
            postgresql_where=sa.text("delivery_due_at IS NOT NULL"),
            sqlite_where=sa.text("delivery_due_at IS NOT NULL"),
        )

    op.create_table(
        "message_templates",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("components", JSON, nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_message_templates_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_message_templates_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
    )
    op.create_index(
        op.f("ix_message_templates_channel_id_name_language"),
        "message_templates",
        ["channel_id", "name", "language"],
        unique=True,
    )

    op.create_table(
        "template_syncs",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("template_count", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_template_syncs_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_template_syncs")),
    )


def downgrade() -> None:
    op.drop_table("template_syncs")
    op.drop_index(
        op.f("ix_message_templates_channel_id_name_language"), table_name="message_templates"
    )
    op.drop_table("message_templates")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_messages_delivery_due_at"),
            postgresql_where=sa.text("delivery_due_at IS NOT NULL"),
            sqlite_where=sa.text("delivery_due_at IS NOT NULL"),
        )
        batch_op.drop_column("delivery_due_at")
        batch_op.drop_column("delivery_attempts")
