"""The database reads behind the indexes: article and conversation states changed since a
time (paged by (updated_at, id)), article contents, and the messages of conversations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain.conversations import Conversation, Message
from core.domain.enums import ConversationStatus
from core.domain.knowledge import KbArticle
from models.retrieval.feed import RowState

__all__ = [
    "ArticleRow",
    "Cursor",
    "MessageRow",
    "article_states",
    "conversation_states",
    "load_articles",
    "load_messages",
]

PUBLISHED = "published"
Cursor = tuple[datetime, uuid.UUID]


@dataclass(frozen=True, slots=True)
class ArticleRow:
    state: RowState
    title: str
    body: str
    language: str | None


@dataclass(frozen=True, slots=True)
class MessageRow:
    conversation_id: uuid.UUID
    direction: str
    sender_type: str
    text: str


def _page(column: Any, id_column: Any, since: datetime | None, after: Cursor | None) -> list[Any]:
    where = []
    if since is not None:
        where.append(column >= since)
    if after is not None:
        moment, row_id = after
        where.append(or_(column > moment, and_(column == moment, id_column > row_id)))
    return where


def _article_state(row: Any) -> RowState:
    visible = row.status == PUBLISHED and row.deleted_at is None
    version = (row.revision, row.updated_at, row.status, row.deleted_at is None)
    return RowState(row.id, row.updated_at, version, visible)


async def article_states(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    since: datetime | None,
    after: Cursor | None,
    limit: int,
    visible_only: bool = False,
) -> list[RowState]:
    """Article states of the tenant updated at or after `since`, after `after`, oldest first."""
    a = KbArticle
    query = select(a.id, a.updated_at, a.revision, a.status, a.deleted_at).where(
        a.tenant_id == tenant_id, *_page(a.updated_at, a.id, since, after)
    )
    if visible_only:
        query = query.where(a.status == PUBLISHED, a.deleted_at.is_(None))
    query = query.order_by(a.updated_at, a.id).limit(limit)
    return [_article_state(row) for row in (await session.execute(query)).all()]


async def load_articles(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[ArticleRow]:
    """The current contents (and state) of these articles; missing ids are left out."""
    if not ids:
        return []
    a = KbArticle
    query = select(
        a.id, a.updated_at, a.revision, a.status, a.deleted_at, a.title, a.body, a.language
    ).where(a.tenant_id == tenant_id, a.id.in_(list(ids)))
    rows = (await session.execute(query)).all()
    return [ArticleRow(_article_state(r), r.title, r.body, r.language) for r in rows]


def _conversation_state(row: Any) -> RowState:
    visible = row.status == ConversationStatus.RESOLVED and row.merged_into_id is None
    version = (row.updated_at, row.status, row.message_count, row.merged_into_id)
    return RowState(row.id, row.updated_at, version, visible)


async def conversation_states(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    since: datetime | None,
    after: Cursor | None,
    limit: int,
    visible_only: bool = False,
) -> list[RowState]:
    """Conversation states of the tenant updated at or after `since`, oldest first; visible
    means resolved and not merged into another conversation."""
    c = Conversation
    query = select(c.id, c.updated_at, c.status, c.message_count, c.merged_into_id).where(
        c.tenant_id == tenant_id, *_page(c.updated_at, c.id, since, after)
    )
    if visible_only:
        query = query.where(c.status == ConversationStatus.RESOLVED, c.merged_into_id.is_(None))
    query = query.order_by(c.updated_at, c.id).limit(limit)
    return [_conversation_state(row) for row in (await session.execute(query)).all()]


async def load_messages(
    session: AsyncSession, tenant_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MessageRow]]:
    """Each conversation's text messages in the order they were stored."""
    if not conversation_ids:
        return {}
    m = Message
    query = (
        select(m.conversation_id, m.direction, m.sender_type, m.text)
        .where(m.tenant_id == tenant_id, m.conversation_id.in_(list(conversation_ids)))
        .order_by(m.conversation_id, m.created_at, m.id)
    )
    out: dict[uuid.UUID, list[MessageRow]] = {cid: [] for cid in conversation_ids}
    for row in (await session.execute(query)).all():
        out[row.conversation_id].append(
            MessageRow(row.conversation_id, row.direction, row.sender_type, row.text or "")
        )
    return out
