"""The outbound port: how an agent's reply leaves on its conversation's channel.

Each channel type with a provider registers a `ChannelSender`; a type without one (the
generic API channel) keeps replies `queued` for its integration to pick up. A sender makes
one attempt per `send()`: the delivery worker (api/services/delivery_worker.py) retries
the transient failures it reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core.domain.enums import ChannelType, IdentityKind
from core.settings import ChannelSettings


@dataclass(frozen=True)
class OutboundReply:
    text: str
    content_type: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    template: dict[str, Any] | None = None
    interactive: dict[str, Any] | None = None
    # Instagram's HUMAN_AGENT tag: a person answering up to 7 days after the customer.
    human_agent: bool = False
    # The conversation's thread, for providers that carry one (email: the subject, the
    # customer's last Message-ID and its References).
    thread: dict[str, Any] | None = None
    # The bytes of the attachments that reference stored blobs (`{"key": <sha256>, ...}`),
    # by key: read from attachment storage by the worker before the send.
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    # Our id of the reply, the same on every attempt: where a provider takes an
    # idempotency key (email's Message-ID), a repeated send is recognizable as one.
    reference: str | None = None


def is_blob(attachment: Mapping[str, Any]) -> bool:
    """An attachment that references a stored blob rather than a URL: the shape of a
    stored message attachment (`storage_key`, `mime_type`), which `POST /v1/attachments`
    hands out and the reply schema normalizes to."""
    return bool(attachment.get("storage_key")) and not attachment.get("url")


def blob_key(attachment: Mapping[str, Any]) -> str:
    return str(attachment["storage_key"])


def blob_type(attachment: Mapping[str, Any]) -> str:
    return str(attachment.get("mime_type") or "application/octet-stream")


@dataclass(frozen=True)
class SendOutcome:
    """What the provider said: its message id, or the error (status, code, message);
    `retryable` errors (429, 5xx, transport) are tried again later, after at least
    `retry_after_s` when the provider said so."""

    provider_message_id: str | None = None
    error: dict[str, Any] | None = None
    retryable: bool = False
    retry_after_s: float | None = None


class ChannelSender(Protocol):
    # The customer identity the provider addresses (a wa_id for WhatsApp).
    identity_kind: IdentityKind
    # Sent by the API process that stored the reply, right after its commit, instead of
    # waiting for the delivery worker: a sender with no provider to call, whose delivery
    # reaches connections held by the API processes (the web widget's sockets).
    in_request: bool

    def refusal(
        self, reply: OutboundReply, last_inbound_at: datetime | None
    ) -> tuple[str, str] | None:
        """An error code and the reason the platform's rules forbid this reply now
        (None: allowed)."""

    async def send(
        self, config: dict[str, Any], recipient: str, reply: OutboundReply
    ) -> SendOutcome:
        """One attempt at delivering the reply; never raises for a provider's answer."""


SenderFactory = Callable[[ChannelSettings], ChannelSender]


def _whatsapp(settings: ChannelSettings) -> ChannelSender:
    from connectors.whatsapp.sender import WhatsAppSender

    return WhatsAppSender(settings)


def _instagram(settings: ChannelSettings) -> ChannelSender:
    from connectors.instagram.sender import InstagramSender

    return InstagramSender(settings)


def _email(settings: ChannelSettings) -> ChannelSender:
    from connectors.email.sender import EmailSender

    return EmailSender(settings)


def _web(settings: ChannelSettings) -> ChannelSender:
    from connectors.web.sender import WebSender

    return WebSender(settings)


SENDERS: dict[ChannelType, SenderFactory] = {
    ChannelType.WHATSAPP: _whatsapp,
    ChannelType.INSTAGRAM: _instagram,
    ChannelType.EMAIL: _email,
    ChannelType.WEB: _web,
}


def sender_for(channel_type: str, settings: ChannelSettings) -> ChannelSender | None:
    factory = SENDERS.get(ChannelType(channel_type))
    return factory(settings) if factory else None
