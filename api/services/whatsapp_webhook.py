"""WhatsApp webhooks: subscription checks, and signed bodies turned into stored messages
(through the same `inbound.receive` as `POST /v1/inbound`) and delivery-status updates."""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from api.schemas.conversations import InboundCustomer, InboundMessage
from api.services import inbound
from connectors.whatsapp.config import WhatsAppConfig
from connectors.whatsapp.graph import GraphClient, GraphError, RetryPolicy
from connectors.whatsapp.payload import (
    MalformedPayload,
    ParsedMessage,
    ParsedStatus,
    parse_webhook,
)
from connectors.whatsapp.signature import signature_valid
from core.domain.channels import Channel
from core.domain.conversations import Message
from core.domain.enums import ChannelType, DeliveryStatus, Direction
from core.events.store import EventRecorder
from core.runtime import Runtime
from core.storage import AttachmentRejected

logger = logging.getLogger(__name__)

# A status only moves forward (Meta may deliver `delivered` after `read`); `failed` always lands.
_RANK = {
    DeliveryStatus.QUEUED.value: 0,
    DeliveryStatus.SENT.value: 1,
    DeliveryStatus.DELIVERED.value: 2,
    DeliveryStatus.READ.value: 3,
}


@dataclass
class WebhookResult:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    unmatched_statuses: int = 0


async def channel_config(
    session: AsyncSession, channel_id: uuid.UUID
) -> tuple[Channel, WhatsAppConfig]:
    channel = await session.get(Channel, channel_id)
    if channel is None or channel.type != ChannelType.WHATSAPP.value:
        raise NotFound(f"WhatsApp channel {channel_id} not found")
    try:
        return channel, WhatsAppConfig.model_validate(channel.config)
    except ValidationError:
        raise Conflict(
            f"channel {channel_id} has no complete WhatsApp config; update it first",
            code="channel_misconfigured",
        ) from None


def check_subscription(config: WhatsAppConfig, mode: str | None, token: str | None) -> None:
    """Meta's verification request: `hub.mode=subscribe` with the channel's verify token."""
    if mode != "subscribe" or token is None:
        raise Forbidden("expected hub.mode=subscribe with hub.verify_token", code="bad_verify")
    if not hmac.compare_digest(token.encode(), config.verify_token.encode()):
        raise Forbidden("hub.verify_token does not match the channel's", code="bad_verify")


async def handle(
    session: AsyncSession,
    recorder: EventRecorder,
    runtime: Runtime,
    channel_id: uuid.UUID,
    body: bytes,
    signature: str | None,
) -> WebhookResult:
    """Verify, decode whole, then store every message and apply every status."""
    channel, config = await channel_config(session, channel_id)
    if not signature_valid(body, signature, config.app_secret):
        raise Unauthorized(
            "X-Hub-Signature-256 is missing or does not match the body", code="bad_signature"
        )
    try:
        parsed = parse_webhook(body)
    except MalformedPayload as exc:
        raise BadRequest(f"malformed WhatsApp webhook: {exc}", code="malformed_webhook") from None
    result = WebhookResult()
    policy = _policy(runtime)
    async with GraphClient(config, policy) as graph:
        for message in parsed.messages:
            if await _already_stored(session, channel.id, message.provider_message_id):
                result.duplicates += 1
                continue
            attachments = await _attachments(graph, runtime, message)
            outcome = await inbound.receive(
                session, recorder, channel.tenant_id, _inbound(channel.id, message, attachments)
            )
            if outcome.created:
                result.stored += 1
            else:
                result.duplicates += 1
    for status in parsed.statuses:
        if await _apply_status(session, channel.id, status):
            result.statuses += 1
        else:
            result.unmatched_statuses += 1
    await session.commit()
    return result


def _policy(runtime: Runtime) -> RetryPolicy:
    channels = runtime.settings.channels
    return RetryPolicy(
        max_attempts=channels.send_max_attempts,
        backoff_s=channels.send_backoff_ms / 1000,
        timeout_s=channels.http_timeout_s,
    )


async def _already_stored(session: AsyncSession, channel_id: uuid.UUID, provider_id: str) -> bool:
    # Checked before fetching media, so a redelivered body costs no Graph API calls.
    found = await session.scalar(
        select(Message.id).where(
            Message.channel_id == channel_id, Message.provider_message_id == provider_id
        )
    )
    return found is not None


async def _attachments(
    graph: GraphClient, runtime: Runtime, message: ParsedMessage
) -> list[dict[str, Any]]:
    """The message's media fetched into attachment storage; a fetch that fails keeps the
    attachment, marked unavailable with the reason, so the message is never lost."""
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
    try:
        data, mime = await graph.fetch_media(
            media.media_id, runtime.settings.storage.max_attachment_bytes
        )
        blob = await runtime.attachments.put(data, mime or media.mime_type)
    except (GraphError, AttachmentRejected) as exc:
        logger.warning(
            "media %s of %s not stored: %s", media.media_id, message.provider_message_id, exc
        )
        return [{**attachment, "status": "unavailable", "error": str(exc)}]
    return [
        {
            **attachment,
            "status": "stored",
            "storage_key": blob.key,
            "size": blob.size,
            "mime_type": blob.content_type,
        }
    ]


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
    """Move our outbound message's delivery status; False when no message has that id."""
    message = await session.scalar(
        select(Message).where(
            Message.channel_id == channel_id,
            Message.provider_message_id == status.provider_message_id,
            Message.direction == Direction.OUTBOUND.value,
        )
    )
    if message is None:
        return False
    if status.status == DeliveryStatus.FAILED.value:
        message.delivery_status = DeliveryStatus.FAILED.value
        first = status.errors[0] if status.errors else {}
        message.delivery_error = {
            "provider": ChannelType.WHATSAPP.value,
            "code": first.get("code"),
            "message": first.get("title") or first.get("message") or "failed",
            "errors": status.errors,
        }
    elif status.status in _RANK and _RANK[status.status] > _RANK.get(message.delivery_status, 0):
        message.delivery_status = status.status
    await session.flush()
    return True
