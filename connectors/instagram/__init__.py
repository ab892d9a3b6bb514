"""Instagram messaging channel: config, webhook decoding, and the sender of agent replies
(signatures and the Graph API client are Meta's shared pieces, `connectors.meta`)."""

from connectors.instagram.config import InstagramConfig
from connectors.instagram.payload import (
    InboundEvent,
    MalformedPayload,
    ParsedWebhook,
    ReadReceipt,
    parse_webhook,
)
from connectors.instagram.sender import HUMAN_AGENT_WINDOW, InstagramSender, message_body

__all__ = [
    "HUMAN_AGENT_WINDOW",
    "InboundEvent",
    "InstagramConfig",
    "InstagramSender",
    "MalformedPayload",
    "ParsedWebhook",
    "ReadReceipt",
    "message_body",
    "parse_webhook",
]
