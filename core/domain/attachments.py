"""Files a tenant uploaded (POST /v1/attachments), so that only they can read them back.

The bytes live in attachment storage under their SHA-256 (core/storage/); a row here says
that this tenant holds that key. Keys that reached a tenant on a message (inbound media,
email attachments) are found through the message's `attachments` instead."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin
from core.db.types import UTCDateTime, utcnow


class Attachment(IdMixin, TenantMixin, Base):
    __tablename__ = "attachments"
    __table_args__ = (Index(None, "tenant_id", "key"),)

    key: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    # Who uploaded it: "user" or "api_key", and that one's id.
    created_by_type: Mapped[str] = mapped_column(String(16), nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
