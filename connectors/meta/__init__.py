"""What Meta's messaging channels (WhatsApp, Instagram) share: app config, webhook
signatures, and the Graph API client with its retries."""

from connectors.meta.config import DEFAULT_GRAPH_API, MetaAppConfig
from connectors.meta.graph import GraphError, MetaGraph, RetryPolicy
from connectors.meta.signature import sign, signature_valid

__all__ = [
    "DEFAULT_GRAPH_API",
    "GraphError",
    "MetaAppConfig",
    "MetaGraph",
    "RetryPolicy",
    "sign",
    "signature_valid",
]
