"""Message analysis with the tenant's taxonomy, and reply suggestions for a conversation."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.ai import AnalyzeItem
from api.services.common import check_owned
from api.services.intents import tenant_taxonomy
from core.domain.conversations import Conversation, Message
from core.domain.enums import Direction
from models.service import Analysis, AnalyzeRequest, KbHit, ModelService, ReplyHit

# The customer's latest messages a suggestion answers, and how much of them.
SUGGEST_MESSAGES = 3
SUGGEST_CHARS = 2000


async def analyze(
    session: AsyncSession, models: ModelService, tenant_id: uuid.UUID, items: list[AnalyzeItem]
) -> list[Analysis]:
    """Analyze messages with the tenant's intent taxonomy applied."""
    taxonomy = await tenant_taxonomy(session, tenant_id)
    await session.close()  # the models may take a while: give the connection back first
    requests = [
        AnalyzeRequest(
            text=item.text,
            channel=item.channel.value if item.channel else None,
            repeat_contacts=item.repeat_contacts,
            taxonomy=taxonomy,
        )
        for item in items
    ]
    return await models.analyze(requests)


async def latest_customer_text(
    session: AsyncSession, conversation_id: uuid.UUID, limit: int = SUGGEST_MESSAGES
) -> str:
    """The conversation's latest inbound messages, oldest first, cut to SUGGEST_CHARS from
    the end (the latest words matter most)."""
    rows = await session.scalars(
        select(Message.text)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.INBOUND,
            Message.text != "",
        )
        .order_by(Message.id.desc())
        .limit(limit)
    )
    text = "\n".join(reversed([t.strip() for t in rows.all() if t.strip()]))
    return text[-SUGGEST_CHARS:]


async def suggest(
    session: AsyncSession,
    models: ModelService,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    articles: int,
    replies: int,
) -> tuple[str, list[KbHit], list[ReplyHit]]:
    """Knowledge passages and similar resolved cases for what the customer last wrote."""
    await check_owned(session, Conversation, conversation_id, tenant_id, what="conversation")
    query = await latest_customer_text(session, conversation_id)
    await session.close()
    if not query:
        return "", [], []
    hits = await models.kb_search(tenant_id, query, k=articles)
    # one more than asked: the conversation itself may come back once it is resolved
    similar = await models.similar_replies(tenant_id, query, k=replies + 1)
    others = [r for r in similar if r.conversation_id != conversation_id][:replies]
    return query, hits, others
