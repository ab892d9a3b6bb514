"""A tenant's intent taxonomy: its own intents, and the default ones it switched off."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin, TimestampMixin
from core.db.types import JsonType


class TenantIntent(IdMixin, TenantMixin, TimestampMixin, Base):
    """A row named like a default intent only switches it on or off (`is_enabled`); any
    other name is a tenant intent, classified few-shot from its description and examples."""

    __tablename__ = "tenant_intents"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    examples: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    is_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
