"""Provider webhooks: unauthenticated by API key, authenticated by each provider's own
verification (WhatsApp: the verify token, then the body's HMAC signature)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse

from api.deps import RuntimeDep, SessionDep
from api.errors import BadRequest
from api.services import whatsapp_webhook
from core.events.store import EventContext, EventRecorder

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.get("/whatsapp/{channel_id}", response_class=PlainTextResponse)
async def whatsapp_verify(
    channel_id: uuid.UUID,
    session: SessionDep,
    mode: Annotated[str | None, Query(alias="hub.mode", max_length=64)] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token", max_length=1024)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=1024)] = None,
) -> str:
    """Meta's subscription check: echoes `hub.challenge` when the verify token matches."""
    _, config = await whatsapp_webhook.channel_config(session, channel_id)
    whatsapp_webhook.check_subscription(config, mode, token)
    if not challenge:
        raise BadRequest("hub.challenge is missing", code="bad_verify")
    return challenge


@router.post("/whatsapp/{channel_id}")
async def whatsapp_events(
    channel_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> dict[str, int]:
    """Messages and delivery statuses, signed with the app secret; 200 once all are stored."""
    # No principal: the events name the channel as their actor.
    context = EventContext(
        correlation_id=request.headers.get("x-request-id"),
        actor_type="channel",
        actor_id=str(channel_id),
    )
    recorder = EventRecorder(session, context)
    result = await whatsapp_webhook.handle(
        session, recorder, runtime, channel_id, await request.body(), signature
    )
    return vars(result)
