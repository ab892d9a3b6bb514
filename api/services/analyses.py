"""What the enrichment pipeline recorded about messages and conversations, for reads.

A message's analysis reads with people's corrections applied: the latest label a person
gave for a task replaces the model's, and `corrections` keeps what the model said."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.conversations import (
    ConversationInsightPublic,
    CorrectionPublic,
    MessageAnalysisPublic,
)
from core.domain.analyses import ConversationInsight, MessageAnalysis
from core.domain.feedback import AnalysisFeedback


async def latest_analyses(
    session: AsyncSession, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, MessageAnalysisPublic]:
    """Each message's most recent analysis (a replay with new models adds a newer one),
    with the corrections people made."""
    if not message_ids:
        return {}
    rows = await session.scalars(
        select(MessageAnalysis)
        .where(MessageAnalysis.message_id.in_(message_ids))
        .order_by(MessageAnalysis.created_at, MessageAnalysis.id)
    )
    # Later rows overwrite earlier ones: the newest wins.
    found = {row.message_id: MessageAnalysisPublic.model_validate(row) for row in rows}
    corrections = await _corrections(session, list(found))
    for message_id, by_task in corrections.items():
        labels = {task: c.label for task, c in by_task.items()}
        found[message_id] = found[message_id].model_copy(update={**labels, "corrections": by_task})
    return found


async def _corrections(
    session: AsyncSession, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, CorrectionPublic]]:
    """The latest person's label per message and task."""
    if not message_ids:
        return {}
    rows = await session.scalars(
        select(AnalysisFeedback)
        .where(AnalysisFeedback.message_id.in_(message_ids))
        .order_by(AnalysisFeedback.created_at, AnalysisFeedback.id)
    )
    latest: dict[uuid.UUID, dict[str, CorrectionPublic]] = {}
    for row in rows:
        latest.setdefault(row.message_id, {})[row.task] = CorrectionPublic(
            label=row.label,
            predicted=row.predicted_label,
            model_version=row.model_version,
            source=row.source,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            created_at=row.created_at,
        )
    return latest


async def conversation_insight(
    session: AsyncSession, conversation_id: uuid.UUID
) -> ConversationInsightPublic | None:
    row = await session.get(ConversationInsight, conversation_id)
    return None if row is None else ConversationInsightPublic.model_validate(row)
