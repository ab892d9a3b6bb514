"""Agent replies out through `POST /{phone_number_id}/messages`, within WhatsApp's rules.

Rule: a free-form message may only be sent within 24 hours of the customer's last
message (the customer-service window); outside it only an approved template may open
the conversation again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.meta.window import STANDARD_WINDOW, within
from connectors.sender import OutboundReply, SendOutcome
from connectors.whatsapp.config import WhatsAppConfig
from connectors.whatsapp.graph import GraphClient, GraphError, RetryPolicy
from connectors.whatsapp.payload import MEDIA_TYPES
from core.domain.enums import IdentityKind
from core.settings import ChannelSettings

SERVICE_WINDOW = STANDARD_WINDOW


def message_body(recipient: str, reply: OutboundReply) -> dict[str, Any]:
    """The Cloud API request body for one reply (a template, an interactive message, one
    media by link with the text as its caption, or text)."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient,
    }
    if reply.template is not None:
        return {**body, "type": "template", "template": template_object(reply.template)}
    if reply.interactive is not None:
        return {**body, "type": "interactive", "interactive": reply.interactive}
    if reply.attachments:
        attachment = reply.attachments[0]
        kind = str(attachment["type"])
        media: dict[str, Any] = {"link": attachment["url"]}
        if reply.text and kind != "sticker" and kind != "audio":
            media["caption"] = reply.text
        if kind == "document" and attachment.get("filename"):
            media["filename"] = attachment["filename"]
        return {**body, "type": kind, kind: media}
    return {**body, "type": "text", "text": {"body": reply.text, "preview_url": False}}


def template_object(template: dict[str, Any]) -> dict[str, Any]:
    """Meta's template object: given `components` are sent as they are, else the
    `parameters` fill the body's {{1}}, {{2}}, ... in order."""
    components = template.get("components")
    if components is None:
        parameters = template.get("parameters") or []
        components = (
            [{"type": "body", "parameters": [{"type": "text", "text": p} for p in parameters]}]
            if parameters
            else []
        )
    found: dict[str, Any] = {
        "name": template["name"],
        "language": {"code": template.get("language") or "en_US"},
    }
    if components:
        found["components"] = components
    return found


class WhatsAppSender:
    identity_kind = IdentityKind.WHATSAPP

    def __init__(self, settings: ChannelSettings) -> None:
        self.policy = RetryPolicy.of(settings)

    def refusal(
        self, reply: OutboundReply, last_inbound_at: datetime | None
    ) -> tuple[str, str] | None:
        if reply.human_agent:
            return (
                "unsupported_option",
                "`human_agent` is an Instagram message tag; WhatsApp answers outside its "
                "window with an approved template",
            )
        if reply.template is not None:
            return None
        if len(reply.attachments) > 1:
            return (
                "unsupported_attachment",
                "WhatsApp sends one media attachment per message: send them one by one",
            )
        for attachment in reply.attachments:
            if attachment.get("type") not in MEDIA_TYPES or not attachment.get("url"):
                return (
                    "unsupported_attachment",
                    "WhatsApp attachments need a `type` (image, audio, video, document, "
                    "sticker) and a public `url`",
                )
        if not within(last_inbound_at, SERVICE_WINDOW):
            return (
                "outside_service_window",
                "the customer's last message is more than 24 hours old: outside WhatsApp's "
                "customer-service window only an approved template may be sent (give `template`)",
            )
        return None

    async def send(
        self, config: dict[str, Any], recipient: str, reply: OutboundReply
    ) -> SendOutcome:
        async with GraphClient(WhatsAppConfig.model_validate(config), self.policy) as graph:
            try:
                return SendOutcome(await graph.send(message_body(recipient, reply)))
            except GraphError as exc:
                return SendOutcome(error=exc.as_dict())
