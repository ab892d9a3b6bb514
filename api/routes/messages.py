"""Messages: people's corrections of what the models read in them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import Agent, RecorderDep, SessionDep
from api.schemas.ai import AnalysisCorrection
from api.schemas.conversations import MessageAnalysisPublic
from api.services import feedback

router = APIRouter(prefix="/v1/messages", tags=["messages"])


@router.patch("/{message_id}/analysis", response_model=MessageAnalysisPublic)
async def correct_analysis(
    message_id: uuid.UUID,
    body: AnalysisCorrection,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> MessageAnalysisPublic:
    """Correct (or confirm) a message's intent, sentiment or urgency: stored as labelled
    examples for the next training run, and shown instead of the model's labels."""
    return await feedback.correct_analysis(session, recorder, principal.tenant_id, message_id, body)
