"""Meta's WhatsApp webhook body, decoded into the messages and statuses RelayDesk stores.

The whole body is decoded before anything is stored, so a malformed one is refused
whole (`MalformedPayload`) and never half-written. Message types the parser does not
know are kept as `unsupported` with their raw content, never dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.meta.payload import MalformedPayload, decode
from core.domain.enums import ContentType

__all__ = ["MEDIA_TYPES", "MalformedPayload", "ParsedMessage", "ParsedWebhook", "parse_webhook"]

MEDIA_TYPES = {
    "image": ContentType.IMAGE,
    "audio": ContentType.AUDIO,
    "video": ContentType.VIDEO,
    "document": ContentType.DOCUMENT,
    "sticker": ContentType.STICKER,
}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Profile(_Lenient):
    name: str = ""


class _Contact(_Lenient):
    wa_id: str = Field(min_length=1)
    profile: _Profile = _Profile()


class _Value(_Lenient):
    messaging_product: Literal["whatsapp"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    contacts: list[_Contact] = Field(default_factory=list)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    statuses: list[dict[str, Any]] = Field(default_factory=list)


class _Change(_Lenient):
    field: str
    value: dict[str, Any]


class _Entry(_Lenient):
    id: str
    changes: list[_Change]


class _Webhook(_Lenient):
    object: Literal["whatsapp_business_account"]
    entry: list[_Entry]


class _Head(_Lenient):
    id: str = Field(min_length=1, max_length=255)
    from_: str = Field(alias="from", pattern=r"^[0-9]{1,31}$")  # the sender's wa_id
    timestamp: str = Field(pattern=r"^[0-9]{1,12}$")
    type: str = Field(min_length=1, max_length=64)
    context: dict[str, Any] | None = None


class _Text(_Lenient):
    body: str = Field(min_length=1)


class _Media(_Lenient):
    id: str = Field(min_length=1)
    mime_type: str = "application/octet-stream"
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None


class _Location(_Lenient):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class _Reply(_Lenient):
    id: str
    title: str
    description: str | None = None


class _Interactive(_Lenient):
    type: str
    button_reply: _Reply | None = None
    list_reply: _Reply | None = None


class _Button(_Lenient):
    text: str
    payload: str | None = None


class _Reaction(_Lenient):
    message_id: str
    emoji: str = ""  # absent when the customer removes a reaction


class _StatusError(_Lenient):
    code: int
    title: str = ""
    message: str | None = None
    error_data: dict[str, Any] | None = None


class _Status(_Lenient):
    id: str = Field(min_length=1, max_length=255)
    status: str
    timestamp: str = Field(pattern=r"^[0-9]{1,12}$")
    recipient_id: str | None = None
    errors: list[_StatusError] = Field(default_factory=list)


@dataclass(frozen=True)
class MediaRef:
    media_id: str
    mime_type: str
    sha256: str | None
    filename: str | None


@dataclass
class ParsedMessage:
    provider_message_id: str
    wa_id: str
    profile_name: str | None
    sent_at: datetime
    content_type: ContentType
    text: str = ""
    media: MediaRef | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedStatus:
    provider_message_id: str
    status: str  # sent, delivered, read, failed (or a newer one Meta adds)
    at: datetime
    errors: list[dict[str, Any]]


@dataclass
class ParsedWebhook:
    messages: list[ParsedMessage] = field(default_factory=list)
    statuses: list[ParsedStatus] = field(default_factory=list)


def _when(timestamp: str) -> datetime:
    return datetime.fromtimestamp(int(timestamp), tz=UTC)


def parse_webhook(body: bytes) -> ParsedWebhook:
    """Every message and status of a webhook body; MalformedPayload when any part of it
    does not match Meta's format."""
    return decode(body, _read_document)


def _read_document(document: Any) -> ParsedWebhook:
    parsed = ParsedWebhook()
    for entry in _Webhook.model_validate(document).entry:
        for change in entry.changes:
            # Other fields (template status, account updates) carry no conversation.
            if change.field == "messages":
                _read_value(_Value.model_validate(change.value), parsed)
    return parsed


def _read_value(value: _Value, parsed: ParsedWebhook) -> None:
    names = {contact.wa_id: contact.profile.name[:200] or None for contact in value.contacts}
    for raw in value.messages:
        head = _Head.model_validate(raw)
        message = ParsedMessage(
            provider_message_id=head.id,
            wa_id=head.from_,
            profile_name=names.get(head.from_),
            sent_at=_when(head.timestamp),
            content_type=ContentType.UNSUPPORTED,
        )
        if head.context:
            message.metadata["context"] = head.context
        _read_content(head.type, raw, message)
        message.metadata["whatsapp_type"] = head.type
        parsed.messages.append(message)
    for raw in value.statuses:
        status = _Status.model_validate(raw)
        parsed.statuses.append(
            ParsedStatus(
                status.id,
                status.status,
                _when(status.timestamp),
                [error.model_dump(exclude_none=True) for error in status.errors],
            )
        )


def _read_content(kind: str, raw: dict[str, Any], message: ParsedMessage) -> None:
    content = raw.get(kind)
    if kind == "text":
        message.content_type = ContentType.TEXT
        message.text = _Text.model_validate(content).body
    elif kind in MEDIA_TYPES:
        media = _Media.model_validate(content)
        message.content_type = MEDIA_TYPES[kind]
        message.text = media.caption or ""
        message.media = MediaRef(media.id, media.mime_type, media.sha256, media.filename)
    elif kind == "location":
        location = _Location.model_validate(content)
        message.content_type = ContentType.LOCATION
        message.text = (
            location.name or location.address or (f"{location.latitude},{location.longitude}")
        )
        message.metadata["location"] = location.model_dump(exclude_none=True)
    elif kind == "contacts" and isinstance(content, list):
        message.content_type = ContentType.CONTACTS
        message.text = ", ".join(_contact_name(card) for card in content)
        message.metadata["contacts"] = content
    elif kind == "interactive":
        interactive = _Interactive.model_validate(content)
        reply = interactive.button_reply or interactive.list_reply
        message.content_type = ContentType.INTERACTIVE
        message.text = reply.title if reply else ""
        message.metadata["interactive"] = interactive.model_dump(exclude_none=True)
    elif kind == "button":
        button = _Button.model_validate(content)
        message.content_type = ContentType.INTERACTIVE
        message.text = button.text
        message.metadata["button"] = button.model_dump(exclude_none=True)
    elif kind == "reaction":
        reaction = _Reaction.model_validate(content)
        message.content_type = ContentType.REACTION
        message.text = reaction.emoji
        message.metadata["reaction"] = reaction.model_dump()
    else:
        # Meta's own `unsupported` (with its errors), or a type newer than this parser.
        message.content_type = ContentType.UNSUPPORTED
        message.metadata["raw"] = {k: v for k, v in raw.items() if k not in ("from", "id")}


def _contact_name(card: Any) -> str:
    if isinstance(card, dict) and isinstance(card.get("name"), dict):
        return str(card["name"].get("formatted_name") or card["name"].get("first_name") or "")
    return ""
