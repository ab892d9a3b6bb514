"""AI: message analysis and reply suggestions."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import AwareDatetime

from api.deps import Admin, Agent, ModelsDep, SessionDep, Viewer
from api.schemas.ai import (
    AnalysisBatchPublic,
    AnalysisPublic,
    AnalyzeBatch,
    AnalyzeBody,
    QualityPublic,
    ShadowPublic,
    SuggestPublic,
    SuggestRequest,
)
from api.services import ai, quality

router = APIRouter(prefix="/v1/ai", tags=["ai"])


@router.post("/analyze", response_model=AnalysisPublic | AnalysisBatchPublic)
async def analyze(
    body: AnalyzeBody, session: SessionDep, models: ModelsDep, principal: Viewer
) -> AnalysisPublic | AnalysisBatchPublic:
    """Language, intent (the tenant's taxonomy), sentiment, urgency and entities of a message,
    or of up to 64 (`{"items": [...]}`)."""
    items = body.items if isinstance(body, AnalyzeBatch) else [body]
    analyses = await ai.analyze(session, models, principal.tenant_id, items)
    public = [AnalysisPublic.model_validate(a) for a in analyses]
    return AnalysisBatchPublic(items=public) if isinstance(body, AnalyzeBatch) else public[0]


@router.get("/shadow", response_model=ShadowPublic)
async def shadow(models: ModelsDep, principal: Admin) -> ShadowPublic:
    """How often each challenger run in shadow agreed with the served head (counts of the
    model replica answering, since it started)."""
    agreements = await models.shadow()
    return ShadowPublic.model_validate({"items": agreements}, from_attributes=True)


@router.post("/suggest", response_model=SuggestPublic)
async def suggest(
    body: SuggestRequest, session: SessionDep, models: ModelsDep, principal: Viewer
) -> SuggestPublic:
    """Knowledge passages (with citations) and similar resolved cases for the customer's
    latest messages in a conversation."""
    query, articles, replies = await ai.suggest(
        session,
        models,
        principal.tenant_id,
        body.conversation_id,
        articles=body.articles,
        replies=body.replies,
    )
    return SuggestPublic.model_validate(
        {"query": query, "articles": articles, "replies": replies}, from_attributes=True
    )


@router.get("/quality", response_model=QualityPublic)
async def model_quality(
    session: SessionDep, principal: Agent, since: AwareDatetime | None = None
) -> QualityPublic:
    """Accuracy of the models against this tenant's reviews (corrections and
    confirmations), per task and model version, reviews since `since` if given."""
    return await quality.quality(session, principal.tenant_id, since)
