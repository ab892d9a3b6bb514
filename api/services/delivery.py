"""Agent replies handed to their channel's provider (connectors/sender.py).

The reply is checked against the channel's rules before it is stored (a refusal is a 409
and stores nothing), stored `queued`, then sent; the provider's answer turns it `sent`
(with the provider's message id, which later status webhooks update) or `failed` with
the provider's code and message on `delivery_error`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Conflict
from api.schemas.conversations import ReplyCreate
from api.services.email_outbound import email_thread
from connectors.sender import ChannelSender, OutboundReply, sender_for
from core.domain.channels import Channel
from core.domain.conversations import Conversation, Message
from core.domain.customers import CustomerIdentity
from core.domain.enums import ChannelType, DeliveryStatus
from core.settings import ChannelSettings


@dataclass(frozen=True)
class Delivery:
    sender: ChannelSender
    config: dict[str, Any]
    recipient: str
    reply: OutboundReply
    channel_type: str


def outbound_reply(data: ReplyCreate) -> OutboundReply:
    return OutboundReply(
        text=data.text,
        content_type=data.content_type.value,
        attachments=list(data.attachments),
        template=data.template.model_dump(exclude_none=True) if data.template else None,
        interactive=data.interactive,
        human_agent=data.human_agent,
    )


async def prepare(
    session: AsyncSession,
    conversation: Conversation,
    data: ReplyCreate,
    settings: ChannelSettings | None,
) -> Delivery | None:
    """What sending this reply takes, or None for a channel without a provider; Conflict
    when the channel's rules refuse it now."""
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
    return Delivery(sender, dict(channel.config), recipient, reply, channel.type)


async def deliver(session: AsyncSession, message: Message, delivery: Delivery) -> None:
    """Send a stored `queued` reply and record the provider's answer on it."""
    outcome = await delivery.sender.send(delivery.config, delivery.recipient, delivery.reply)
    if outcome.provider_message_id is not None:
        message.provider_message_id = outcome.provider_message_id
        message.delivery_status = DeliveryStatus.SENT.value
    else:
        message.delivery_status = DeliveryStatus.FAILED.value
        message.delivery_error = {"provider": delivery.channel_type, **(outcome.error or {})}
    await session.commit()
