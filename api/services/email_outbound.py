"""What an email reply needs from its conversation to thread in the customer's client."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.domain.conversations import Conversation, Message
from core.domain.enums import Direction


async def email_thread(session: AsyncSession, conversation: Conversation) -> dict[str, Any]:
    """The subject and the customer's last message (its Message-ID and References)."""
    last = (
        await session.execute(
            select(Message.provider_message_id, Message.meta)
            .where(
                Message.conversation_id == conversation.id,
                Message.direction == Direction.INBOUND.value,
                Message.provider_message_id.is_not(None),
            )
            .order_by(Message.created_at.desc())
            .limit(1)
        )
    ).first()
    thread: dict[str, Any] = {"subject": conversation.subject}
    if last is None:
        return thread
    email = (last.meta or {}).get("email", {}) if isinstance(last.meta, dict) else {}
    thread["in_reply_to"] = last.provider_message_id
    thread["references"] = [r for r in email.get("references", []) if isinstance(r, str)]
    if email.get("subject"):
        thread["subject"] = email["subject"]
    return thread
