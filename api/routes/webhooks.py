"""Provider webhooks: unauthenticated by API key, authenticated by each provider's own
verification (Meta's channels: the verify token, then the body's HMAC signature)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse

from api.deps import RuntimeDep, SessionDep
from api.services import instagram_webhook, whatsapp_webhook
from api.services.meta_webhook import verify_subscription
from connectors.instagram.config import InstagramConfig
from connectors.whatsapp.config import WhatsAppConfig
from core.domain.enums import ChannelType
from core.events.store import EventContext, EventRecorder

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Mode = Annotated[str | None, Query(alias="hub.mode", max_length=64)]
VerifyToken = Annotated[str | None, Query(alias="hub.verify_token", max_length=1024)]
Challenge = Annotated[str | None, Query(alias="hub.challenge", max_length=1024)]
Signature = Annotated[str | None, Header(alias="X-Hub-Signature-256")]


def _recorder(request: Request, session: SessionDep, channel_id: uuid.UUID) -> EventRecorder:
    # No principal: the events name the channel as their actor.
    context = EventContext(
        correlation_id=request.headers.get("x-request-id"),
        actor_type="channel",
        actor_id=str(channel_id),
    )
    return EventRecorder(session, context)


@router.get("/whatsapp/{channel_id}", response_class=PlainTextResponse)
async def whatsapp_verify(
    channel_id: uuid.UUID,
    session: SessionDep,
    mode: Mode = None,
    token: VerifyToken = None,
    challenge: Challenge = None,
) -> str:
    """Meta's subscription check: echoes `hub.challenge` when the verify token matches."""
    query = (mode, token, challenge)
    return await verify_subscription(
        session, channel_id, ChannelType.WHATSAPP, WhatsAppConfig, query
    )


@router.post("/whatsapp/{channel_id}")
async def whatsapp_events(
    channel_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    signature: Signature = None,
) -> dict[str, int]:
    """Messages and delivery statuses, signed with the app secret; 200 once all are stored."""
    recorder = _recorder(request, session, channel_id)
    body = await request.body()
    result = await whatsapp_webhook.handle(session, recorder, runtime, channel_id, body, signature)
    return vars(result)


@router.get("/instagram/{channel_id}", response_class=PlainTextResponse)
async def instagram_verify(
    channel_id: uuid.UUID,
    session: SessionDep,
    mode: Mode = None,
    token: VerifyToken = None,
    challenge: Challenge = None,
) -> str:
    """Meta's subscription check: echoes `hub.challenge` when the verify token matches."""
    query = (mode, token, challenge)
    return await verify_subscription(
        session, channel_id, ChannelType.INSTAGRAM, InstagramConfig, query
    )


@router.post("/instagram/{channel_id}")
async def instagram_events(
    channel_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    signature: Signature = None,
) -> dict[str, int]:
    """Direct messages, reactions, postbacks and read receipts, signed with the app
    secret; 200 once all are stored."""
    recorder = _recorder(request, session, channel_id)
    body = await request.body()
    result = await instagram_webhook.handle(session, recorder, runtime, channel_id, body, signature)
    return vars(result)
