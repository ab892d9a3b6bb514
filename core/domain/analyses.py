"""What the models said about each message, and what that means for its conversation.

`message_analyses` holds one row per message and model version: the enrichment pipeline
writes it with `INSERT ... ON CONFLICT DO NOTHING` on `(message_id, model_version)`, so a
redelivered message changes nothing, and a replay with new models adds rows beside the old
ones. `conversation_insights` is the conversation's running state, folded from its
analyzed messages in order (language, last intent, sentiment trend, suggested priority)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin
from core.db.types import JsonType, UTCDateTime, utcnow


class MessageAnalysis(IdMixin, TenantMixin, Base):
    __tablename__ = "message_analyses"
    __table_args__ = (
        UniqueConstraint("message_id", "model_version"),
        Index(None, "tenant_id", "created_at"),
    )

    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False
    )
    # A digest of every component version below: the idempotency key with message_id.
    model_version: Mapped[str] = mapped_column(String(32), nullable=False)
    encoder_version: Mapped[str] = mapped_column(String(128), nullable=False)
    versions: Mapped[dict[str, str]] = mapped_column(JsonType, nullable=False, default=dict)
    language: Mapped[str | None] = mapped_column(String(16))
    intent: Mapped[str | None] = mapped_column(String(64))
    sentiment: Mapped[str | None] = mapped_column(String(16))
    urgency: Mapped[str | None] = mapped_column(String(16))
    # {"language": {code: conf}, "intent": {...}, "sentiment": {...}, "urgency": {...}}
    probabilities: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    entities: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, nullable=False, default=list)
    # Confidences, abstention reasons, notes on the input, truncation.
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="pipeline")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ConversationInsight(TenantMixin, Base):
    __tablename__ = "conversation_insights"

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str | None] = mapped_column(String(16))
    intent: Mapped[str | None] = mapped_column(String(64))
    urgency: Mapped[str | None] = mapped_column(String(16))
    sentiment: Mapped[str | None] = mapped_column(String(16))
    # Exponential moving average of P(positive) - P(negative) over the customer's messages.
    sentiment_score: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    sentiment_trend: Mapped[str] = mapped_column(String(16), nullable=False, default="steady")
    suggested_priority: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    analyzed_messages: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    model_version: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
