"""Instagram messaging webhooks: signed bodies turned into stored messages (through the
same `inbound.receive` as `POST /v1/inbound`), read receipts applied to our replies, and
echoes of our own sends recognized and left out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.conversations import InboundCustomer, InboundMessage
from api.services.meta_webhook import (
    advance,
    channel_config,
    check_storable,
    retry_policy,
    signed_body,
    store_each,
    stored_media,
)
from connectors.instagram.config import InstagramConfig
from connectors.instagram.payload import InboundEvent, ReadReceipt, parse_webhook
from connectors.meta.graph import MetaGraph
from core.domain.conversations import Message
from core.domain.enums import ChannelType, DeliveryStatus, Direction
from core.events.store import EventRecorder
from core.runtime import Runtime


@dataclass
class WebhookResult:
    stored: int = 0
    duplicates: int = 0
    echoes: int = 0
    reads: int = 0
    unmatched_reads: int = 0


async def handle(
    session: AsyncSession,
    recorder: EventRecorder,
    runtime: Runtime,
    channel_id: uuid.UUID,
    body: bytes,
    signature: str | None,
) -> WebhookResult:
    """Verify, decode whole, then store every customer event and apply every read."""
    channel, config = await channel_config(
        session, channel_id, ChannelType.INSTAGRAM, InstagramConfig, runtime
    )
    parsed = signed_body(ChannelType.INSTAGRAM, config, body, signature, parse_webhook)
    check_storable(
        ChannelType.INSTAGRAM,
        [partial(_inbound, channel.id, e, [{}] * len(e.attachments)) for e in parsed.messages],
    )
    # Echoes are our own sends coming back: the reply is already stored as outbound.
    result = WebhookResult(echoes=len(parsed.echoes))
    graph = MetaGraph(config.access_token, str(config.graph_api_base_url), retry_policy(runtime))
    async with graph:

        async def build(event: InboundEvent) -> InboundMessage:
            attachments = [await _fetched(graph, runtime, event, a) for a in event.attachments]
            return _inbound(channel.id, event, attachments)

        result.stored, result.duplicates = await store_each(
            session,
            recorder,
            channel,
            parsed.messages,
            build,
            provider_id=lambda e: e.provider_message_id,
            fetches_media=lambda e: bool(e.attachments),
        )
    for receipt in parsed.reads:
        if await _apply_read(session, channel.id, receipt):
            result.reads += 1
        else:
            result.unmatched_reads += 1
    await session.commit()
    return result


async def _fetched(
    graph: MetaGraph, runtime: Runtime, event: InboundEvent, attachment: dict[str, Any]
) -> dict[str, Any]:
    """A media attachment's bytes from its CDN link (which carries its own signature, so
    no bearer token goes with it); links (shares, story mentions) stay as they are."""
    if attachment.get("status") != "pending":
        return attachment
    url = str(attachment["url"])

    async def fetch(max_bytes: int) -> tuple[bytes, str]:
        response = await graph.download(url, max_bytes, authorized=False)
        return response.content, response.headers.get("content-type", "").split(";")[0]

    return await stored_media(runtime, attachment, fetch, event.provider_message_id)


def _inbound(
    channel_id: uuid.UUID, event: InboundEvent, attachments: list[dict[str, Any]]
) -> InboundMessage:
    return InboundMessage(
        channel_id=channel_id,
        customer=InboundCustomer(external_id=event.igsid),
        text=event.text,
        content_type=event.content_type,
        attachments=attachments,
        provider_message_id=event.provider_message_id,
        sent_at=event.sent_at,
        metadata=event.metadata,
    )


async def _apply_read(session: AsyncSession, channel_id: uuid.UUID, receipt: ReadReceipt) -> bool:
    """Mark our reply `mid`, and every earlier one of its conversation, read; False when
    no reply has that id."""
    read = await session.scalar(
        select(Message).where(
            Message.channel_id == channel_id,
            Message.provider_message_id == receipt.mid,
            Message.direction == Direction.OUTBOUND.value,
        )
    )
    if read is None:
        return False
    earlier = await session.scalars(
        select(Message).where(
            Message.conversation_id == read.conversation_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.created_at <= read.created_at,
            Message.delivery_status != DeliveryStatus.FAILED.value,
        )
    )
    for message in earlier:
        advance(message, DeliveryStatus.READ.value)
    await session.flush()
    return True
