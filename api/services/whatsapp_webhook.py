"""WhatsApp webhooks: signed bodies turned into stored messages (through the same
`inbound.receive` as `POST /v1/inbound`) and delivery-status updates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.conversations import InboundCustomer, InboundMessage
from api.services import early_statuses
from api.services.meta_webhook import (
    advance,
    channel_config,
    check_storable,
    retry_policy,
    signed_body,
    store_each,
    stored_media,
)
from connectors.whatsapp.config import WhatsAppConfig
from connectors.whatsapp.graph import GraphClient
from connectors.whatsapp.payload import ParsedMessage, ParsedStatus, parse_webhook
from core.domain.conversations import Message
from core.domain.enums import ChannelType, DeliveryStatus, Direction
from core.events.store import EventRecorder
from core.runtime import Runtime


@dataclass
class WebhookResult:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    unmatched_statuses: int = 0


async def handle(
    session: AsyncSession,
    recorder: EventRecorder,
    runtime: Runtime,
    channel_id: uuid.UUID,
    body: bytes,
    signature: str | None,
) -> WebhookResult:
    """Verify, decode whole, then store every message and apply every status."""
    channel, config = await channel_config(
        session, channel_id, ChannelType.WHATSAPP, WhatsAppConfig, runtime
    )
    parsed = signed_body(ChannelType.WHATSAPP, config, body, signature, parse_webhook)
    check_storable(
        ChannelType.WHATSAPP,
        [partial(_inbound, channel.id, m, [{}] if m.media else []) for m in parsed.messages],
    )
    result = WebhookResult()
    async with GraphClient(config, retry_policy(runtime)) as graph:

        async def build(message: ParsedMessage) -> InboundMessage:
            attachments = await _attachments(graph, runtime, message)
            return _inbound(channel.id, message, attachments)

        result.stored, result.duplicates = await store_each(
            session,
            recorder,
            channel,
            parsed.messages,
            build,
            provider_id=lambda m: m.provider_message_id,
            fetches_media=lambda m: m.media is not None,
        )
    for status in parsed.statuses:
        if await _apply_status(session, channel.id, status):
            result.statuses += 1
        else:
            result.unmatched_statuses += 1
    await session.commit()
    return result


async def _attachments(
    graph: GraphClient, runtime: Runtime, message: ParsedMessage
) -> list[dict[str, Any]]:
    media = message.media
    if media is None:
        return []
    attachment: dict[str, Any] = {
        "type": message.content_type.value,
        "media_id": media.media_id,
        "mime_type": media.mime_type,
        "filename": media.filename,
        "provider_sha256": media.sha256,
    }
    fetch = partial(graph.fetch_media, media.media_id)
    return [await stored_media(runtime, attachment, fetch, message.provider_message_id)]


def _inbound(
    channel_id: uuid.UUID, message: ParsedMessage, attachments: list[dict[str, Any]]
) -> InboundMessage:
    return InboundMessage(
        channel_id=channel_id,
        customer=InboundCustomer(
            external_id=message.wa_id, name=message.profile_name, phone=f"+{message.wa_id}"
        ),
        text=message.text,
        content_type=message.content_type,
        attachments=attachments,
        provider_message_id=message.provider_message_id,
        sent_at=message.sent_at,
        metadata=message.metadata,
    )


async def _apply_status(session: AsyncSession, channel_id: uuid.UUID, status: ParsedStatus) -> bool:
    """Move our outbound message's delivery status; False when no message has that id yet
    (the status is then held for the delivery worker, which may not have recorded the id
    of a reply it has just sent: api/services/early_statuses.py)."""
    message = await session.scalar(
        select(Message).where(
            Message.channel_id == channel_id,
            Message.provider_message_id == status.provider_message_id,
            Message.direction == Direction.OUTBOUND.value,
        )
    )
    if message is None:
        await early_statuses.hold(
            session, channel_id, status.provider_message_id, status.status, status.errors
        )
        return False
    apply_status(message, status.status, status.errors)
    await session.flush()
    return True


def apply_status(message: Message, status: str, errors: list[dict[str, Any]]) -> None:
    """A WhatsApp status on our reply: `failed` always lands, with Meta's first error;
    any other only moves the status forward."""
    if status == DeliveryStatus.FAILED.value:
        message.delivery_status = DeliveryStatus.FAILED.value
        first = errors[0] if errors else {}
        message.delivery_error = {
            "provider": ChannelType.WHATSAPP.value,
            "code": first.get("code"),
            "message": first.get("title") or first.get("message") or "failed",
            "errors": errors,
        }
    else:
        advance(message, status)
