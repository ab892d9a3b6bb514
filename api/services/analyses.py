"""What the enrichment pipeline recorded about messages and conversations, for reads."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.conversations import ConversationInsightPublic, MessageAnalysisPublic
from core.domain.analyses import ConversationInsight, MessageAnalysis


async def latest_analyses(
    session: AsyncSession, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, MessageAnalysisPublic]:
    """Each message's most recent analysis (a replay with new models adds a newer one)."""
    if not message_ids:
        return {}
    rows = await session.scalars(
        select(MessageAnalysis)
        .where(MessageAnalysis.message_id.in_(message_ids))
        .order_by(MessageAnalysis.created_at, MessageAnalysis.id)
    )
    # Later rows overwrite earlier ones: the newest wins.
    return {row.message_id: MessageAnalysisPublic.model_validate(row) for row in rows}


async def conversation_insight(
    session: AsyncSession, conversation_id: uuid.UUID
) -> ConversationInsightPublic | None:
    row = await session.get(ConversationInsight, conversation_id)
    return None if row is None else ConversationInsightPublic.model_validate(row)
