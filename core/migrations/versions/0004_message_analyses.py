"""message analyses and conversation insights

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "message_analyses",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("encoder_version", sa.String(length=128), nullable=False),
        sa.Column("versions", _JSON, nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("sentiment", sa.String(length=16), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=True),
        sa.Column("probabilities", _JSON, nullable=False),
        sa.Column("entities", _JSON, nullable=False),
        sa.Column("details", _JSON, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_analyses_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_message_analyses_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_analyses")),
        sa.UniqueConstraint(
            "message_id",
            "model_version",
            name=op.f("uq_message_analyses_message_id_model_version"),
        ),
    )
    with op.batch_alter_table("message_analyses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_analyses_tenant_id_created_at"),
            ["tenant_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "conversation_insights",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=True),
        sa.Column("sentiment", sa.String(length=16), nullable=True),
        sa.Column("sentiment_score", sa.Float(), nullable=False),
        sa.Column("sentiment_trend", sa.String(length=16), nullable=False),
        sa.Column("suggested_priority", sa.String(length=16), nullable=False),
        sa.Column("analyzed_messages", sa.Integer(), nullable=False),
        sa.Column("last_message_id", sa.Uuid(), nullable=True),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_insights_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_conversation_insights_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_conversation_insights")),
    )


def downgrade() -> None:
    op.drop_table("conversation_insights")
    with op.batch_alter_table("message_analyses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_analyses_tenant_id_created_at"))
    op.drop_table("message_analyses")
