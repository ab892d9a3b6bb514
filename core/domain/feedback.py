"""Labelled examples that people gave the models: corrections and confirmations.

`analysis_feedback` holds one row per reviewed prediction: the label a person gave (`label`)
beside what the model said (`predicted_label`) and the version of the head that said it.
A label equal to the prediction is a confirmation, kept so that accuracy can be computed.
Rows are appended, never updated: when a message is reviewed twice, the latest row per
(message, task) is the one that counts.

The message text is copied in, so a training run reads one table and an example outlives a
replay of its analyses. The row belongs to the message's conversation: erasing a customer
(which deletes their conversations) erases their examples too.

`retrain_marks` remembers, per task, when the retrain trigger last fired."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin
from core.db.types import UTCDateTime, utcnow

# `session.info` key: the tasks a transaction stored corrections of, for the retrain
# trigger that runs after the commit.
FEEDBACK_TASKS = "relaydesk.feedback_tasks"


class FeedbackTask(StrEnum):
    INTENT = "intent"
    SENTIMENT = "sentiment"
    URGENCY = "urgency"


class FeedbackSource(StrEnum):
    AGENT_CORRECTION = "agent_correction"  # PATCH /v1/messages/{id}/analysis
    TICKET_CHANGE = "ticket_change"  # a ticket field changed against the prediction


class AnalysisFeedback(IdMixin, TenantMixin, Base):
    __tablename__ = "analysis_feedback"
    __table_args__ = (
        Index(None, "message_id", "task"),
        Index(None, "tenant_id", "task", "created_at"),
        Index(None, "task", "created_at"),
    )

    # No foreign key: the example stays when the analysed message is replaced or pruned.
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    task: Mapped[str] = mapped_column(String(16), nullable=False)
    label: Mapped[str] = mapped_column(String(64), nullable=False)
    # null: the model abstained (below its confidence threshold).
    predicted_label: Mapped[str | None] = mapped_column(String(64))
    confirmed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # The version of the head that made the prediction (`message_analyses.versions[task]`).
    model_version: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(24), nullable=False)
    # Who: a user id or an API key id, as on domain events.
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[str] = mapped_column(String(64), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class RetrainMark(Base):
    __tablename__ = "retrain_marks"

    task: Mapped[str] = mapped_column(String(16), primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
