"""The web chat channel: the embeddable widget (static/widget.js), its config, visitor
tokens, the frames the widget and the API exchange, and the sender that pushes agent
replies to the visitor's open sockets."""

from connectors.web.config import WebConfig
from connectors.web.payload import (
    ReceiptIn,
    SessionIn,
    VisitorMessageIn,
    agent_provider_id,
    provider_id,
    push_key,
    widget_message,
)
from connectors.web.sender import WebSender
from connectors.web.token import Visitor, VisitorTokenError, issue, read

__all__ = [
    "ReceiptIn",
    "SessionIn",
    "Visitor",
    "VisitorMessageIn",
    "VisitorTokenError",
    "WebConfig",
    "WebSender",
    "agent_provider_id",
    "issue",
    "provider_id",
    "push_key",
    "read",
    "widget_message",
]
