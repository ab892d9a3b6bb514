"""Agent replies handed to their channel's provider (connectors/sender.py), through the
delivery worker (delivery_worker.py).

In the request: the reply is checked against the channel's rules before it is stored (a
refusal is a 409, a template or attachment that cannot be sent a 422, and nothing is
stored), then stored `queued` and due for the worker, in the transaction that records its
`message.sent` event. What the send needs beyond the message (the recipient, the email
thread, the Instagram tag) is kept on it (`metadata.delivery`), so the worker sends
exactly what the request accepted.

In the worker: `load` rebuilds the send from the stored message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Conflict, Unprocessable
from api.schemas.conversations import ReplyCreate
from api.services import attachments as attachments_service
from api.services import templates
from api.services.email_outbound import email_thread
from connectors.sender import (
    ChannelSender,
    OutboundReply,
    blob_key,
    is_blob,
    sender_for,
)
from core.domain.channels import Channel
from core.domain.conversations import Conversation, Message
from core.domain.customers import CustomerIdentity
from core.domain.enums import ChannelType
from core.settings import ChannelSettings
from core.storage import AttachmentStore

# Set on a session that stored a reply for the worker: the request nudges it after commit.
QUEUED_FLAG = "delivery_queued"
# Channels with a reply for an `in_request` sender (the web widget), sent by the request
# itself once committed (api/routes/conversations.py `reply`).
IN_REQUEST_CHANNELS = "delivery_in_request"


@dataclass(frozen=True)
class Delivery:
    sender: ChannelSender
    config: dict[str, Any]
    recipient: str
    reply: OutboundReply
    channel_type: str
    # Noted on the message, not refused (a template sent unchecked).
    warnings: tuple[str, ...] = ()


def outbound_reply(data: ReplyCreate) -> OutboundReply:
    return OutboundReply(
        text=data.text,
        content_type=data.content_type.value,
        attachments=list(data.attachments),
        template=data.template.model_dump(exclude_none=True) if data.template else None,
        interactive=data.interactive,
        human_agent=data.human_agent,
    )


async def check_blobs(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    attachments: list[dict[str, Any]],
    store: AttachmentStore | None,
) -> None:
    """Every attachment that names a stored blob names one this tenant knows and that is
    still stored."""
    await attachments_service.check_known(session, tenant_id, attachments)
    for index, attachment in enumerate(attachments):
        if not is_blob(attachment):
            continue
        if store is not None and not await store.exists(blob_key(attachment)):
            raise Unprocessable(
                f"attachments[{index}] is no longer stored", code="unknown_attachment"
            )


async def prepare(
    session: AsyncSession,
    conversation: Conversation,
    data: ReplyCreate,
    settings: ChannelSettings | None,
    store: AttachmentStore | None = None,
) -> Delivery | None:
    """What sending this reply takes, or None for a channel without a provider; Conflict
    when the channel's rules refuse it now, Unprocessable when what it names cannot be
    sent (an unknown template or attachment)."""
    await check_blobs(session, conversation.tenant_id, list(data.attachments), store)
    if settings is None:
        return None
    channel = await session.get(Channel, conversation.channel_id)
    if channel is None:
        return None
    sender = sender_for(channel.type, settings)
    if sender is None:
        return None
    reply = outbound_reply(data)
    refused = sender.refusal(reply, conversation.last_inbound_at)
    if refused is not None:
        code, reason = refused
        raise Conflict(reason, code=code, details={"channel_type": channel.type})
    if not channel.is_active:
        raise Conflict(f"channel {channel.id} is disabled", code="channel_disabled")
    warnings: list[str] = []
    if reply.template is not None and channel.type == ChannelType.WHATSAPP.value:
        warnings += await templates.check_reply(session, channel.id, reply.template)
    recipient = await session.scalar(
        select(CustomerIdentity.value).where(
            CustomerIdentity.customer_id == conversation.customer_id,
            CustomerIdentity.kind == sender.identity_kind.value,
        )
    )
    if recipient is None:
        raise Conflict(
            f"the customer has no {sender.identity_kind.value} identity to send to",
            code="customer_unreachable",
        )
    if channel.type == ChannelType.EMAIL.value:
        reply = replace(reply, thread=await email_thread(session, conversation))
    return Delivery(sender, dict(channel.config), recipient, reply, channel.type, tuple(warnings))


def enqueue(session: AsyncSession, message: Message, delivery: Delivery, now: datetime) -> None:
    """Make a reply being stored due for the delivery worker now."""
    reply = delivery.reply
    message.meta = {
        **message.meta,
        "delivery": {
            "recipient": delivery.recipient,
            "thread": reply.thread,
            "human_agent": reply.human_agent,
        },
    }
    if delivery.warnings:
        message.meta["warnings"] = list(delivery.warnings)
    message.delivery_attempts = 0
    message.delivery_due_at = now
    session.info[QUEUED_FLAG] = True
    if delivery.sender.in_request:
        session.info.setdefault(IN_REQUEST_CHANNELS, set()).add(message.channel_id)


@dataclass(frozen=True)
class Unsendable:
    """A stored reply that can no longer be sent (its channel is gone or disabled)."""

    code: str
    message: str


async def load(
    session: AsyncSession, message_id: uuid.UUID, settings: ChannelSettings
) -> tuple[Message, Delivery | Unsendable] | None:
    """The stored reply and what sending it takes now; None when the message is gone."""
    message = await session.get(Message, message_id)
    if message is None:
        return None
    channel = await session.get(Channel, message.channel_id)
    sender = sender_for(channel.type, settings) if channel is not None else None
    if channel is None or sender is None:
        return message, Unsendable("channel_gone", "the reply's channel has no sender")
    if not channel.is_active:
        return message, Unsendable(
            "channel_disabled", f"channel {channel.id} was disabled before the reply was sent"
        )
    stored = message.meta.get("delivery") if isinstance(message.meta, dict) else None
    stored = stored if isinstance(stored, dict) else {}
    recipient = stored.get("recipient")
    if not isinstance(recipient, str):
        return message, Unsendable("customer_unreachable", "the reply has no recipient")
    reply = OutboundReply(
        text=message.text,
        content_type=message.content_type,
        attachments=list(message.attachments),
        template=message.meta.get("template"),
        interactive=message.meta.get("interactive"),
        human_agent=bool(stored.get("human_agent")),
        thread=stored.get("thread"),
        reference=str(message.id),
    )
    return message, Delivery(sender, dict(channel.config), recipient, reply, channel.type)
