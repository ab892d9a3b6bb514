"""analysis feedback and retrain marks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analysis_feedback",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("predicted_label", sa.String(length=64), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_analysis_feedback_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_analysis_feedback_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_feedback")),
    )
    with op.batch_alter_table("analysis_feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analysis_feedback_message_id_task"),
            ["message_id", "task"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_analysis_feedback_tenant_id_task_created_at"),
            ["tenant_id", "task", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_analysis_feedback_task_created_at"),
            ["task", "created_at"],
            unique=False,
        )

    op.create_table(
        "retrain_marks",
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task", name=op.f("pk_retrain_marks")),
    )


def downgrade() -> None:
    op.drop_table("retrain_marks")
    with op.batch_alter_table("analysis_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analysis_feedback_task_created_at"))
        batch_op.drop_index(batch_op.f("ix_analysis_feedback_tenant_id_task_created_at"))
        batch_op.drop_index(batch_op.f("ix_analysis_feedback_message_id_task"))
    op.drop_table("analysis_feedback")
