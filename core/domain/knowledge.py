"""Knowledge-base articles: the source of truth the retrieval index is built from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin, TimestampMixin
from core.db.types import JsonType, UTCDateTime


class KbArticle(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "kb_articles"
    __table_args__ = (
        Index(None, "tenant_id", "id"),
        # Index replicas catch up by reading rows changed after their watermark.
        Index(None, "updated_at"),
    )

    title: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # ISO 639-1 code; None: detected from the text when indexed.
    language: Mapped[str | None] = mapped_column(String(8))
    tags: Mapped[list[Any]] = mapped_column(JsonType, nullable=False, default=list)
    # draft articles are stored but never retrieved
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="published")
    # Bumped on every edit: an index keeps the revision it embedded and skips stale work.
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # Soft delete, so that an index replica polling for changes sees the removal.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
