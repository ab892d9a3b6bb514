"""Tickets: numbered units of work with a status life cycle, linked to conversations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin, TimestampMixin
from core.db.types import JsonType, UTCDateTime
from core.domain.enums import Priority, TicketStatus, TicketType


class Ticket(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index(None, "tenant_id", "id"),
        Index(None, "tenant_id", "status", "id"),
        Index(None, "tenant_id", "assignee_id", "id"),
        Index(None, "tenant_id", "team_id", "id"),
        Index(None, "tenant_id", "priority", "id"),
        Index(None, "tenant_id", "updated_at"),
        Index(None, "tenant_id", "requester_id"),
    )

    number: Mapped[int] = mapped_column(Integer, nullable=False)
    subject: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=TicketStatus.NEW)
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default=Priority.NORMAL)
    type: Mapped[str] = mapped_column(String(16), nullable=False, default=TicketType.QUESTION)
    requester_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("customers.id", ondelete="SET NULL")
    )
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("teams.id", ondelete="SET NULL")
    )
    tags: Mapped[list[str]] = mapped_column(JsonType, nullable=False, default=list)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    sla_policy_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("sla_policies.id", ondelete="SET NULL")
    )
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_breached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    resolution_breached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    # Optimistic locking: every UPDATE carries `WHERE version = <read version>`.
    __mapper_args__ = {"version_id_col": version}


ticket_conversations = Table(
    "ticket_conversations",
    Base.metadata,
    Column("ticket_id", Uuid, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "conversation_id",
        Uuid,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Index(None, "conversation_id"),
)
