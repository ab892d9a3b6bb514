"""The generic API channel: how integrations and channel adapters hand in messages."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import Agent, RecorderDep, SessionDep
from api.schemas.conversations import InboundMessage, InboundResult
from api.services import attachments, inbound

router = APIRouter(prefix="/v1/inbound", tags=["inbound"])


@router.post(
    "",
    response_model=InboundResult,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "Already stored: the same provider message id was seen."}},
)
async def receive(
    body: InboundMessage,
    response: Response,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> dict[str, object]:
    """Store a customer message: 201 when new, 200 with the stored one when a duplicate."""
    await attachments.check_known(session, principal.tenant_id, body.attachments)
    outcome = await inbound.receive(session, recorder, principal.tenant_id, body)
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return {
        "created": outcome.created,
        "message": outcome.message,
        "conversation_id": outcome.conversation_id,
        "customer_id": outcome.customer_id,
    }
