"""WhatsApp Cloud API channel: config, webhook decoding and signatures, Graph API calls,
and the sender of agent replies."""

from connectors.meta.signature import sign, signature_valid
from connectors.whatsapp.config import DEFAULT_GRAPH_API, WhatsAppConfig
from connectors.whatsapp.graph import GraphClient, GraphError, RetryPolicy
from connectors.whatsapp.payload import MalformedPayload, ParsedWebhook, parse_webhook
from connectors.whatsapp.sender import SERVICE_WINDOW, WhatsAppSender, message_body

__all__ = [
    "DEFAULT_GRAPH_API",
    "SERVICE_WINDOW",
    "GraphClient",
    "GraphError",
    "MalformedPayload",
    "ParsedWebhook",
    "RetryPolicy",
    "WhatsAppConfig",
    "WhatsAppSender",
    "message_body",
    "parse_webhook",
    "sign",
    "signature_valid",
]
