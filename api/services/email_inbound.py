"""Email into conversations: one raw message (pushed to the webhook or polled over IMAP)
parsed, skipped when a program sent it, threaded, its attachments stored, then stored
once through the same `inbound.receive` as every other channel.

Threading: the ids a message answers (In-Reply-To, References) are looked up among the
channel's stored messages, the customer's and our replies alike (our replies are stored
under the Message-ID we gave them); failing that, an earlier conversation of the same
sender whose subject matches without its Re:/Fwd:/AW: prefixes, within the channel's
window. A resolved conversation found this way is reopened, so the answer joins it
instead of opening a new one."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.conversations import InboundCustomer, InboundMessage
from api.services import inbound
from api.services.meta_webhook import already_stored
from connectors.email.config import EmailConfig
from connectors.email.parse import MalformedEmail, ParsedEmail, RawAttachment, parse_email
from connectors.email.threading import normalized_subject
from core.db.types import utcnow
from core.domain.channels import Channel
from core.domain.conversations import Conversation, Message
from core.domain.customers import CustomerIdentity
from core.domain.enums import (
    OPEN_CONVERSATION_STATUSES,
    ContentType,
    ConversationStatus,
    IdentityKind,
)
from core.events.store import EventRecorder
from core.events.types import DomainEvent
from core.runtime import Runtime
from core.storage import AttachmentRejected

logger = logging.getLogger(__name__)

MAX_TEXT = 65_536
MAX_ATTACHMENTS = 50
_OPEN = [s.value for s in OPEN_CONVERSATION_STATUSES]


@dataclass
class EmailResult:
    stored: int = 0
    duplicates: int = 0
    auto_replies: int = 0
    bounces: int = 0
    own: int = 0  # copies of our own replies (a Sent folder, a BCC to the mailbox)


async def ingest(
    session: AsyncSession,
    recorder: EventRecorder,
    runtime: Runtime,
    channel: Channel,
    config: EmailConfig,
    raw: bytes,
    result: EmailResult,
) -> None:
    """Store the message in `raw` once (counted in `result`); MalformedEmail when it cannot
    be stored (no sender, ...), before anything of it is written."""
    parsed = parse_email(raw)
    if parsed.automatic == "bounce":
        result.bounces += 1
        return
    if parsed.automatic is not None:
        result.auto_replies += 1
        return
    if parsed.from_address == str(config.address).lower():
        result.own += 1
        return
    # Built once without attachments so a message the inbound path refuses is refused
    # before its attachments are stored.
    _inbound(channel.id, parsed, [], None)
    if await already_stored(session, channel.id, parsed.message_id):
        result.duplicates += 1
        return
    match = await _thread(session, channel, config, parsed)
    if match is not None:
        await _reopen(session, recorder, channel, match[0])
    attachments = [await _stored(runtime, a) for a in parsed.attachments[:MAX_ATTACHMENTS]]
    data = _inbound(channel.id, parsed, attachments, match)
    outcome = await inbound.receive(session, recorder, channel.tenant_id, data)
    if outcome.created:
        result.stored += 1
    else:
        result.duplicates += 1


def _customer(parsed: ParsedEmail) -> InboundCustomer:
    name = parsed.from_name[:200] or None
    try:
        return InboundCustomer(
            external_id=parsed.from_address, email=parsed.from_address, name=name
        )
    except ValidationError:
        # An address the strict validator refuses (a local domain) still identifies them.
        return InboundCustomer(external_id=parsed.from_address, name=name)


def _inbound(
    channel_id: uuid.UUID,
    parsed: ParsedEmail,
    attachments: list[dict[str, Any]],
    match: tuple[Conversation, str] | None,
) -> InboundMessage:
    text = parsed.text
    email: dict[str, Any] = {
        "message_id": parsed.message_id,
        "subject": parsed.subject,
        "from": parsed.from_address,
        "to": parsed.to[:50],
        "cc": parsed.cc[:50],
        "in_reply_to": parsed.in_reply_to[:10],
        # The newest ids are what a reply's References must carry on.
        "references": parsed.references[-20:],
        "html_only": parsed.html_only,
        "quote_trimmed": parsed.quote_trimmed,
    }
    if len(text) > MAX_TEXT:
        email["truncated_from"] = len(text)
        text = text[: MAX_TEXT - 1] + "…"
    if len(parsed.attachments) > MAX_ATTACHMENTS:
        email["attachments_left_out"] = len(parsed.attachments) - MAX_ATTACHMENTS
    if match is not None:
        email["thread"] = {"conversation_id": str(match[0].id), "matched_by": match[1]}
    try:
        return InboundMessage(
            channel_id=channel_id,
            customer=_customer(parsed),
            text=text,
            content_type=ContentType.EMAIL,
            attachments=attachments,
            provider_message_id=parsed.message_id,
            sent_at=parsed.sent_at,
            subject=parsed.subject[:500] or None,
            metadata={"email": email},
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise MalformedEmail(problems) from None


def _kind(content_type: str) -> str:
    family = content_type.split("/", 1)[0]
    return family if family in ("image", "audio", "video") else "document"


async def _stored(runtime: Runtime, attachment: RawAttachment) -> dict[str, Any]:
    """The attachment in storage; one the limits refuse is kept, unavailable, with the
    reason, so the message itself is never lost."""
    shown: dict[str, Any] = {
        "type": _kind(attachment.content_type),
        "filename": attachment.filename,
        "mime_type": attachment.content_type,
        "inline": attachment.inline,
    }
    if attachment.content_id:
        shown["content_id"] = attachment.content_id
    try:
        blob = await runtime.attachments.put(attachment.data, attachment.content_type)
    except AttachmentRejected as exc:
        logger.warning("email attachment %r not stored: %s", attachment.filename, exc)
        return {**shown, "status": "unavailable", "error": str(exc), "size": len(attachment.data)}
    return {
        **shown,
        "status": "stored",
        "storage_key": blob.key,
        "size": blob.size,
        "mime_type": blob.content_type,
    }


async def _thread(
    session: AsyncSession, channel: Channel, config: EmailConfig, parsed: ParsedEmail
) -> tuple[Conversation, str] | None:
    """The conversation this message continues, and how it was found."""
    # Only the sender's own conversations: a colleague in Cc answering joins their own
    # thread (the inbound path's rule), and must not reopen someone else's.
    senders = (
        select(Conversation)
        .join(CustomerIdentity, CustomerIdentity.customer_id == Conversation.customer_id)
        .where(
            Conversation.channel_id == channel.id,
            CustomerIdentity.tenant_id == channel.tenant_id,
            CustomerIdentity.kind == IdentityKind.EMAIL.value,
            CustomerIdentity.value == parsed.from_address,
        )
    )
    ids = parsed.thread_ids
    if ids:
        found = (
            await session.execute(
                senders.join(Message, Message.conversation_id == Conversation.id)
                .where(Message.channel_id == channel.id, Message.provider_message_id.in_(ids))
                .order_by(Message.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if found is not None:
            return found, "references"
    subject = normalized_subject(parsed.subject)
    if not subject:
        return None
    since = utcnow() - timedelta(days=config.subject_window_days)
    candidates = (
        await session.execute(
            senders.where(Conversation.last_message_at >= since)
            .order_by(Conversation.last_message_at.desc())
            .limit(50)
        )
    ).scalars()
    for conversation in candidates:
        if normalized_subject(conversation.subject) == subject:
            return conversation, "subject"
    return None


async def _reopen(
    session: AsyncSession, recorder: EventRecorder, channel: Channel, conversation: Conversation
) -> None:
    """Reopen the sender's resolved conversation the message answers, unless they have
    another open one on the channel (the inbound path then uses that one)."""
    if conversation.status in _OPEN or conversation.merged_into_id is not None:
        return
    open_one = await session.scalar(
        select(Conversation.id).where(
            Conversation.customer_id == conversation.customer_id,
            Conversation.channel_id == channel.id,
            Conversation.status.in_(_OPEN),
        )
    )
    if open_one is not None:
        return
    old = conversation.status
    conversation.status = ConversationStatus.OPEN.value
    conversation.snoozed_until = None
    conversation.updated_at = utcnow()
    await session.flush()
    await recorder.record(
        DomainEvent.CONVERSATION_STATUS_CHANGED,
        tenant_id=channel.tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation.id,
        payload={"from": old, "to": conversation.status, "changed": ["status"]},
    )


async def ingest_one(
    session: AsyncSession,
    recorder: EventRecorder,
    runtime: Runtime,
    channel: Channel,
    config: EmailConfig,
    raw: bytes,
) -> EmailResult:
    result = EmailResult()
    await ingest(session, recorder, runtime, channel, config, raw, result)
    return result
