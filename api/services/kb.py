"""Knowledge-base articles: the rows the retrieval index is built from.

Every change bumps `revision` (the index keeps the revision it embedded) and `updated_at`
(index replicas poll for rows changed after their watermark); deleting is soft for the same
reason. After a write the model service is told to refresh the tenant's index now; if that
fails the write still stands, and the index catches up on its own."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, NotFound
from api.schemas.common import unique_tags
from api.schemas.kb import KbArticleCreate, KbArticleUpdate
from api.services.common import json_array_contains
from core.db.engine import dialect_name
from core.db.types import utcnow
from core.domain.knowledge import KbArticle
from models.service import ModelService

logger = logging.getLogger(__name__)

NOT_NULL = ("title", "body", "tags", "status")


def article_query(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    status: str | None = None,
    language: str | None = None,
    tag: str | None = None,
) -> Select[KbArticle]:
    query = select(KbArticle).where(
        KbArticle.tenant_id == tenant_id, KbArticle.deleted_at.is_(None)
    )
    if status:
        query = query.where(KbArticle.status == status)
    if language:
        query = query.where(KbArticle.language == language)
    if tag:
        query = query.where(json_array_contains(dialect_name(session), KbArticle.tags, tag))
    return query


async def get_article(
    session: AsyncSession, tenant_id: uuid.UUID, article_id: uuid.UUID
) -> KbArticle:
    """The tenant's live article, or 404 (deleted and other tenants' articles alike)."""
    article = await session.get(KbArticle, article_id)
    if article is None or article.tenant_id != tenant_id or article.deleted_at is not None:
        raise NotFound(f"article {article_id} not found")
    return article


async def create_article(
    session: AsyncSession, tenant_id: uuid.UUID, data: KbArticleCreate
) -> KbArticle:
    article = KbArticle(
        tenant_id=tenant_id,
        title=data.title,
        body=data.body,
        language=data.language,
        tags=unique_tags(data.tags),
        status=data.status,
        revision=1,
    )
    session.add(article)
    await session.commit()
    return article


async def update_article(
    session: AsyncSession, tenant_id: uuid.UUID, article_id: uuid.UUID, data: KbArticleUpdate
) -> KbArticle:
    changes = data.model_dump(exclude_unset=True)
    if nulls := sorted(k for k in NOT_NULL if k in changes and changes[k] is None):
        raise BadRequest(f"{', '.join(nulls)} cannot be null", code="null_not_allowed")
    article = await get_article(session, tenant_id, article_id)
    if "tags" in changes:
        changes["tags"] = unique_tags(changes["tags"])
    changed = {k: v for k, v in changes.items() if getattr(article, k) != v}
    if changed:
        for name, value in changed.items():
            setattr(article, name, value)
        article.revision += 1
        await session.commit()
    return article


async def delete_article(
    session: AsyncSession, tenant_id: uuid.UUID, article_id: uuid.UUID
) -> None:
    article = await get_article(session, tenant_id, article_id)
    article.deleted_at = utcnow()
    article.revision += 1
    await session.commit()


async def refresh_index(models: ModelService, tenant_id: uuid.UUID) -> None:
    """Ask for the tenant's index to catch up now; a failure only delays it."""
    try:
        await models.kb_refresh(tenant_id)
    except Exception:  # the write is committed: never turn it into an error
        logger.warning("knowledge index refresh failed for tenant %s", tenant_id, exc_info=True)
