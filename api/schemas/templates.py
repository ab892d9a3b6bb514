"""Schemas of a WhatsApp channel's synced message templates."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import Output


class TemplatePublic(Output):
    name: str
    language: str
    status: str = Field(description="Meta's review status: only APPROVED templates are sent.")
    category: str
    components: list[dict[str, Any]] = Field(description="Meta's components, as synced.")
    provider_id: str | None
    synced_at: datetime


class TemplateList(Output):
    channel_id: uuid.UUID
    synced_at: datetime | None = Field(
        description="The last successful sync; null: never (template replies go unchecked)."
    )
    attempted_at: datetime | None
    error: str | None = Field(description="Why the last sync failed, if it did.")
    items: list[TemplatePublic]
