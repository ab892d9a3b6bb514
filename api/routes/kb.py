"""Knowledge base: articles and search."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import Agent, ModelsDep, SessionDep, SettingsDep, Viewer
from api.schemas.common import Page
from api.schemas.kb import (
    ArticleStatus,
    KbArticleCreate,
    KbArticlePublic,
    KbArticleUpdate,
    KbSearchPublic,
    KbSearchRequest,
)
from api.services import kb
from api.services.common import keyset_page
from core.domain.knowledge import KbArticle

router = APIRouter(prefix="/v1/kb", tags=["knowledge base"])


@router.get("/articles", response_model=Page[KbArticlePublic])
async def list_articles(
    session: SessionDep,
    principal: Viewer,
    settings: SettingsDep,
    status: ArticleStatus | None = None,
    language: Annotated[str | None, Query(max_length=8)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> dict[str, object]:
    """List articles, newest first."""
    query = kb.article_query(
        session, principal.tenant_id, status=status, language=language, tag=tag
    )
    items, next_cursor = await keyset_page(
        session, query, KbArticle.id, cursor, limit or settings.api.page_size_default
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/articles", response_model=KbArticlePublic, status_code=status.HTTP_201_CREATED)
async def create_article(
    body: KbArticleCreate, session: SessionDep, models: ModelsDep, principal: Agent
) -> KbArticle:
    """Add an article; published ones become searchable within seconds."""
    article = await kb.create_article(session, principal.tenant_id, body)
    await kb.refresh_index(models, principal.tenant_id)
    return article


@router.get("/articles/{article_id}", response_model=KbArticlePublic)
async def get_article(article_id: uuid.UUID, session: SessionDep, principal: Viewer) -> KbArticle:
    """One article."""
    return await kb.get_article(session, principal.tenant_id, article_id)


@router.patch("/articles/{article_id}", response_model=KbArticlePublic)
async def update_article(
    article_id: uuid.UUID,
    body: KbArticleUpdate,
    session: SessionDep,
    models: ModelsDep,
    principal: Agent,
) -> KbArticle:
    """Change an article; any change bumps its revision."""
    article = await kb.update_article(session, principal.tenant_id, article_id, body)
    await kb.refresh_index(models, principal.tenant_id)
    return article


@router.delete("/articles/{article_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_article(
    article_id: uuid.UUID, session: SessionDep, models: ModelsDep, principal: Agent
) -> None:
    """Delete an article (it leaves search at once)."""
    await kb.delete_article(session, principal.tenant_id, article_id)
    await kb.refresh_index(models, principal.tenant_id)


@router.post("/search", response_model=KbSearchPublic)
async def search(body: KbSearchRequest, models: ModelsDep, principal: Viewer) -> KbSearchPublic:
    """Passages of published articles that answer `query`, each with its citation."""
    hits = await models.kb_search(principal.tenant_id, body.query, k=body.k, language=body.language)
    return KbSearchPublic.model_validate({"items": hits}, from_attributes=True)
