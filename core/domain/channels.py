"""Channels (inboxes): where customer messages come from and replies go to."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin, TimestampMixin
from core.db.types import JsonType, UTCDateTime, utcnow

# Config keys whose values are credentials: stored, never returned by the API.
SECRET_MARKERS = ("token", "secret", "password", "key")


def redact_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the API shows it: secrets replaced by a marker saying one is set."""
    shown: dict[str, Any] = {}
    for name, value in config.items():
        if isinstance(value, dict):
            shown[name] = redact_config(value)
        elif any(marker in name.lower() for marker in SECRET_MARKERS) and value:
            shown[name] = "***"
        else:
            shown[name] = value
    return shown


class Channel(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "channels"
    __table_args__ = (Index(None, "tenant_id", "type"),)

    type: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class MailboxCursor(Base):
    """How far an email channel's IMAP folder has been read: the folder's UIDVALIDITY and
    the highest UID stored, advanced in the same transaction as the messages, so a
    restarted poller neither skips nor repeats one. A new UIDVALIDITY (the server
    renumbered the folder) restarts the folder from the beginning; Message-IDs keep that
    from storing anything twice."""

    __tablename__ = "mailbox_cursors"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    folder: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_uid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class EarlyStatus(Base):
    """A provider's status for a reply whose provider id is not recorded yet: the delivery
    worker records the id after the send returns, and Meta's webhook for that id may come
    first. Applied and dropped when the worker records the id; kept a day at most (a
    status for a message RelayDesk never sent is otherwise kept for nothing)."""

    __tablename__ = "early_statuses"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    provider_message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, nullable=False, default=list)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class MessageTemplate(IdMixin, TenantMixin, Base):
    """A WhatsApp message template as the business account last listed it (synced by
    api/services/templates.py): a template reply is checked against these."""

    __tablename__ = "message_templates"
    __table_args__ = (Index(None, "channel_id", "name", "language", unique=True),)

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    language: Mapped[str] = mapped_column(String(16), nullable=False)
    # APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ... as Meta says.
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    category: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    components: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, nullable=False, default=list)
    provider_id: Mapped[str | None] = mapped_column(String(64))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class TemplateSync(Base):
    """A channel's last template sync: when it last succeeded (None: never, and template
    replies go unchecked) and the last failure's reason."""

    __tablename__ = "template_syncs"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    template_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    error: Mapped[str | None] = mapped_column(Text)
