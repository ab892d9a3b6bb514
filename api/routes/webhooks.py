"""Provider webhooks: unauthenticated by API key, authenticated by each provider's own
verification (Meta's channels: the verify token, then the body's HMAC signature; email:
the channel's bearer token)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import PlainTextResponse

from api.deps import RuntimeDep, SessionDep
from api.services import email_webhook, instagram_webhook, whatsapp_webhook
from api.services.meta_webhook import verify_subscription
from connectors.instagram.config import InstagramConfig
from connectors.whatsapp.config import WhatsAppConfig
from core.domain.enums import ChannelType
from core.events.store import EventContext, EventRecorder
from core.runtime import Runtime

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _hub(
    mode: Annotated[str | None, Query(alias="hub.mode", max_length=64)] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token", max_length=1024)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=1024)] = None,
) -> tuple[str | None, str | None, str | None]:
    return mode, token, challenge


@dataclass(frozen=True)
class _Delivery:
    """A signed webhook delivery: what the channel's service needs to store it."""

    recorder: EventRecorder
    runtime: Runtime
    body: bytes
    signature: str | None


async def _delivery(
    channel_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> _Delivery:
    # No principal: the events name the channel as their actor.
    context = EventContext(
        correlation_id=request.headers.get("x-request-id"),
        actor_type="channel",
        actor_id=str(channel_id),
    )
    return _Delivery(EventRecorder(session, context), runtime, await request.body(), signature)


HubQuery = Annotated[tuple[str | None, str | None, str | None], Depends(_hub)]
DeliveryDep = Annotated[_Delivery, Depends(_delivery)]


@router.get("/whatsapp/{channel_id}", response_class=PlainTextResponse)
async def whatsapp_verify(channel_id: uuid.UUID, session: SessionDep, hub: HubQuery) -> str:
    """Meta's subscription check: echoes `hub.challenge` when the verify token matches."""
    return await verify_subscription(session, channel_id, ChannelType.WHATSAPP, WhatsAppConfig, hub)


@router.post("/whatsapp/{channel_id}")
async def whatsapp_events(
    channel_id: uuid.UUID, session: SessionDep, sent: DeliveryDep
) -> dict[str, int]:
    """Messages and delivery statuses, signed with the app secret; 200 once all are stored."""
    result = await whatsapp_webhook.handle(
        session, sent.recorder, sent.runtime, channel_id, sent.body, sent.signature
    )
    return vars(result)


@router.get("/instagram/{channel_id}", response_class=PlainTextResponse)
async def instagram_verify(channel_id: uuid.UUID, session: SessionDep, hub: HubQuery) -> str:
    """Meta's subscription check: echoes `hub.challenge` when the verify token matches."""
    kind = ChannelType.INSTAGRAM
    return await verify_subscription(session, channel_id, kind, InstagramConfig, hub)


@router.post("/instagram/{channel_id}")
async def instagram_events(
    channel_id: uuid.UUID, session: SessionDep, sent: DeliveryDep
) -> dict[str, int]:
    """Direct messages, reactions, postbacks and read receipts, signed with the app
    secret; 200 once all are stored (echoes of our own sends are counted, not stored)."""
    result = await instagram_webhook.handle(
        session, sent.recorder, sent.runtime, channel_id, sent.body, sent.signature
    )
    return vars(result)


@router.post("/email/{channel_id}")
async def email_message(
    channel_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
    content_type: Annotated[str | None, Header()] = None,
) -> dict[str, int]:
    """One raw RFC 5322 message (`Content-Type: message/rfc822`), as a forwarding service
    or an MTA pipe delivers it, with `Authorization: Bearer <the channel's webhook_token>`;
    parsed exactly like a message polled over IMAP. 200 once stored, a duplicate, or
    skipped as an auto-reply or bounce (each counted)."""
    context = EventContext(
        correlation_id=request.headers.get("x-request-id"),
        actor_type="channel",
        actor_id=str(channel_id),
    )
    result = await email_webhook.handle(
        session,
        EventRecorder(session, context),
        runtime,
        channel_id,
        await request.body(),
        authorization,
        content_type,
    )
    return vars(result)
