"""Conversations (a customer's thread on one channel), their messages and internal notes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin, TimestampMixin
from core.db.types import JsonType, UTCDateTime, utcnow
from core.domain.enums import ConversationStatus, DeliveryStatus, Priority

_OPEN = "status IN ('open', 'pending', 'snoozed')"


class Conversation(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # At most one open thread per customer and channel: concurrent inbound messages
        # of a new customer cannot open two.
        Index(
            "uq_conversations_open_thread",
            "customer_id",
            "channel_id",
            unique=True,
            postgresql_where=text(_OPEN),
            sqlite_where=text(_OPEN),
        ),
        Index(None, "tenant_id", "id"),
        Index(None, "tenant_id", "status", "id"),
        Index(None, "tenant_id", "channel_id", "id"),
        Index(None, "tenant_id", "assignee_id", "id"),
        Index(None, "tenant_id", "team_id", "id"),
        Index(None, "tenant_id", "priority", "id"),
        Index(None, "tenant_id", "updated_at"),
        Index(None, "tenant_id", "customer_id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=ConversationStatus.OPEN)
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default=Priority.NORMAL)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("teams.id", ondelete="SET NULL")
    )
    tags: Mapped[list[str]] = mapped_column(JsonType, nullable=False, default=list)
    subject: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="SET NULL")
    )


class Message(IdMixin, TenantMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Idempotency of every channel: the provider's id is stored once per channel.
        UniqueConstraint("channel_id", "provider_message_id"),
        Index(None, "conversation_id", "id"),
        Index(None, "tenant_id", "id"),
        # The delivery worker's queue: only the replies still to send are indexed.
        Index(
            None,
            "delivery_due_at",
            postgresql_where=text("delivery_due_at IS NOT NULL"),
            sqlite_where=text("delivery_due_at IS NOT NULL"),
        ),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False
    )
    direction: Mapped[str] = mapped_column(String(16), nullable=False)
    sender_type: Mapped[str] = mapped_column(String(16), nullable=False)
    sender_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    content_type: Mapped[str] = mapped_column(String(16), nullable=False, default="text")
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(
        JsonType, nullable=False, default=list
    )
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    delivery_status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=DeliveryStatus.RECEIVED
    )
    # The provider's error: the last one while a send is retried (`queued`), the final
    # one once `failed`.
    delivery_error: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # Outbound through a provider: attempts made, and when the delivery worker may claim
    # the reply next (NULL: nothing for the worker to do). While a worker holds it, the
    # time its lease ends, after which another worker may claim it again.
    delivery_attempts: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    delivery_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, nullable=False, default=dict)
    # When the customer (or provider) says it was sent; created_at is when we stored it.
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    @property
    def warnings(self) -> list[str]:
        """What the API noted on the message without refusing it (a template reply sent
        unchecked, since the channel's templates were never synced)."""
        found = self.meta.get("warnings") if isinstance(self.meta, dict) else None
        return [str(w) for w in found] if isinstance(found, list) else []


class Note(IdMixin, TenantMixin, Base):
    """An internal note: visible to agents, never sent to the customer."""

    __tablename__ = "notes"
    __table_args__ = (Index(None, "conversation_id"), Index(None, "ticket_id"))

    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("tickets.id", ondelete="CASCADE")
    )
    author_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
