"""Meta's Instagram messaging webhook (object `instagram`), decoded into the events
RelayDesk stores: customer messages, reactions, postbacks, read receipts and echoes.

The whole body is decoded before anything is stored, so a malformed one is refused whole
(`MalformedPayload`). Event kinds the parser does not know are kept as `unsupported`
with their raw content, never dropped. Reactions and unknown events carry no message id
of their own: theirs is a digest of the event, so a redelivered body is still stored once."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.meta.payload import MalformedPayload, decode
from core.domain.enums import ContentType

# Attachments whose bytes are fetched into storage; other kinds (shares, reels, story
# mentions) are kept as links.
MEDIA_TYPES = {
    "image": ContentType.IMAGE,
    "video": ContentType.VIDEO,
    "audio": ContentType.AUDIO,
    "file": ContentType.DOCUMENT,
}
_KNOWN = ("message", "reaction", "postback", "read")

__all__ = [
    "MEDIA_TYPES",
    "InboundEvent",
    "MalformedPayload",
    "ParsedWebhook",
    "parse_webhook",
]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Party(_Lenient):
    id: str = Field(min_length=1, max_length=64)


class _Payload(_Lenient):
    url: str | None = Field(default=None, max_length=4096)


class _Attachment(_Lenient):
    type: str = Field(min_length=1, max_length=64)
    payload: _Payload = _Payload()


class _Story(_Lenient):
    url: str | None = None
    id: str | None = None


class _ReplyTo(_Lenient):
    mid: str | None = None
    story: _Story | None = None


class _Message(_Lenient):
    mid: str = Field(min_length=1, max_length=255)
    text: str | None = None
    attachments: list[_Attachment] = Field(default_factory=list)
    is_echo: bool = False
    reply_to: _ReplyTo | None = None


class _Reaction(_Lenient):
    mid: str = Field(min_length=1, max_length=255)
    action: str = "react"
    reaction: str | None = None
    emoji: str | None = None


class _Postback(_Lenient):
    title: str = ""
    payload: str | None = None
    mid: str | None = Field(default=None, max_length=255)


class _Read(_Lenient):
    mid: str = Field(min_length=1, max_length=255)


class _Event(_Lenient):
    sender: _Party
    recipient: _Party
    timestamp: int = Field(ge=0)  # milliseconds


class _Entry(_Lenient):
    id: str
    time: int | None = None
    messaging: list[dict[str, Any]] = Field(default_factory=list)


class _Webhook(_Lenient):
    object: Literal["instagram"]
    entry: list[_Entry]


@dataclass
class InboundEvent:
    """One thing the customer did that is stored as an inbound message."""

    provider_message_id: str
    igsid: str  # the Instagram-scoped id of the customer
    sent_at: datetime
    content_type: ContentType
    text: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadReceipt:
    igsid: str
    mid: str  # the customer has read every message up to this one
    at: datetime


@dataclass
class ParsedWebhook:
    messages: list[InboundEvent] = field(default_factory=list)
    reads: list[ReadReceipt] = field(default_factory=list)
    echoes: list[str] = field(default_factory=list)  # mids of our own sends


def _when(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


def _digest(kind: str, raw: dict[str, Any]) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    return f"ig.{kind}.{hashlib.sha256(canonical).hexdigest()[:48]}"


def parse_webhook(body: bytes) -> ParsedWebhook:
    """Every event of a webhook body; MalformedPayload when any part of it does not match
    Meta's format."""
    return decode(body, _read_document)


def _read_document(document: Any) -> ParsedWebhook:
    parsed = ParsedWebhook()
    for entry in _Webhook.model_validate(document).entry:
        for raw in entry.messaging:
            _read_event(entry.id, raw, parsed)
    return parsed


def _read_event(account_id: str, raw: dict[str, Any], parsed: ParsedWebhook) -> None:
    head = _Event.model_validate(raw)
    at = _when(head.timestamp)
    customer = head.sender.id
    if "message" in raw:
        message = _Message.model_validate(raw["message"])
        if message.is_echo:
            parsed.echoes.append(message.mid)
        else:
            parsed.messages.append(_message(customer, at, message))
    elif "reaction" in raw:
        reaction = _Reaction.model_validate(raw["reaction"])
        parsed.messages.append(
            InboundEvent(
                _digest("reaction", raw),
                customer,
                at,
                ContentType.REACTION,
                text=(reaction.emoji or "") if reaction.action == "react" else "",
                metadata={"reaction": reaction.model_dump(exclude_none=True)},
            )
        )
    elif "postback" in raw:
        postback = _Postback.model_validate(raw["postback"])
        parsed.messages.append(
            InboundEvent(
                postback.mid or _digest("postback", raw),
                customer,
                at,
                ContentType.INTERACTIVE,
                text=postback.title,
                metadata={"postback": postback.model_dump(exclude_none=True)},
            )
        )
    elif "read" in raw:
        parsed.reads.append(ReadReceipt(customer, _Read.model_validate(raw["read"]).mid, at))
    else:
        # Our own account acting (a handover, an edit from the app) names the customer
        # as the recipient.
        other = head.recipient.id if customer == account_id else customer
        kind = next((k for k in raw if k not in ("sender", "recipient", "timestamp")), "event")
        parsed.messages.append(
            InboundEvent(
                _digest("event", raw),
                other,
                at,
                ContentType.UNSUPPORTED,
                metadata={"instagram_event": kind, "raw": raw},
            )
        )


def _message(customer: str, at: datetime, message: _Message) -> InboundEvent:
    event = InboundEvent(message.mid, customer, at, ContentType.TEXT, text=message.text or "")
    for attachment in message.attachments:
        kind = attachment.type
        link = {"type": kind, "url": attachment.payload.url}
        if kind == "story_mention":
            event.metadata["story"] = {"kind": "mention", "url": attachment.payload.url}
            event.attachments.append({**link, "status": "link"})
        elif kind in MEDIA_TYPES and attachment.payload.url:
            if not event.text and event.content_type is ContentType.TEXT:
                event.content_type = MEDIA_TYPES[kind]
            event.attachments.append({**link, "status": "pending"})
        else:
            event.attachments.append(
                {**link, "status": "link", "payload": attachment.payload.model_dump()}
            )
    if message.reply_to is not None:
        if message.reply_to.story is not None:
            event.metadata["story"] = {"kind": "reply", **message.reply_to.story.model_dump()}
        if message.reply_to.mid:
            event.metadata["reply_to"] = message.reply_to.mid
    if not event.text and not event.attachments:
        # Meta's `is_unsupported` messages, or content newer than this parser.
        event.content_type = ContentType.UNSUPPORTED
        event.metadata["raw"] = message.model_dump(exclude_none=True)
    return event
