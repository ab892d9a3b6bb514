"""Customers (contacts) and the channel identities that resolve to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.base import Base, IdMixin, TenantMixin, TimestampMixin
from core.db.types import JsonType, UTCDateTime, utcnow


class Customer(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index(None, "tenant_id", "email"),
        Index(None, "tenant_id", "phone"),
        Index(None, "tenant_id", "id"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    # Set when this customer was merged into another; the row stays for history.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("customers.id", ondelete="SET NULL")
    )

    identities: Mapped[list[CustomerIdentity]] = relationship(
        back_populates="customer",
        lazy="selectin",
        order_by="CustomerIdentity.created_at",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class CustomerIdentity(IdMixin, TenantMixin, Base):
    __tablename__ = "customer_identities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "value"),
        Index(None, "customer_id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    value: Mapped[str] = mapped_column(String(320), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")
