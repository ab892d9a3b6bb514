"""Agent replies out through `POST /{phone_number_id}/messages`, within WhatsApp's rules.

Rule: a free-form message may only be sent within 24 hours of the customer's last
message (the customer-service window); outside it only an approved template may open
the conversation again.

Media goes by link (`{"type", "url"}`), or, for a blob in attachment storage
(`{"storage_key", "mime_type", "filename"}`), uploaded first with `POST /{phone_number_id}/media`
and sent by the media id Meta answers. The Cloud API takes no idempotency key: a send the
worker repeats after a lost answer reaches the customer twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.meta.graph import send_failure
from connectors.meta.window import STANDARD_WINDOW, within
from connectors.sender import OutboundReply, SendOutcome, blob_key, blob_type, is_blob
from connectors.whatsapp.config import WhatsAppConfig
from connectors.whatsapp.graph import GraphClient, GraphError, RetryPolicy
from connectors.whatsapp.payload import MEDIA_TYPES
from core.domain.enums import IdentityKind
from core.settings import ChannelSettings

SERVICE_WINDOW = STANDARD_WINDOW


def media_kind(attachment: dict[str, Any]) -> str:
    """The WhatsApp media type of an attachment: its `type`, else its content type's."""
    if attachment.get("type"):
        return str(attachment["type"])
    family = blob_type(attachment).split("/", 1)[0]
    return family if family in ("image", "audio", "video") else "document"


def message_body(
    recipient: str, reply: OutboundReply, media_id: str | None = None
) -> dict[str, Any]:
    """The Cloud API request body for one reply (a template, an interactive message, one
    media by link, or by `media_id` once uploaded, with the text as its caption, or text)."""
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
        kind = media_kind(attachment)
        media: dict[str, Any] = {"id": media_id} if media_id else {"link": attachment["url"]}
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
    in_request = False

    def __init__(self, settings: ChannelSettings) -> None:
        self.policy = RetryPolicy.single(settings)

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
            if is_blob(attachment):
                if media_kind(attachment) not in MEDIA_TYPES:
                    return (
                        "unsupported_attachment",
                        "a stored attachment's `type` must be image, audio, video, document "
                        "or sticker",
                    )
            elif attachment.get("type") not in MEDIA_TYPES or not attachment.get("url"):
                return (
                    "unsupported_attachment",
                    "WhatsApp attachments need a `type` (image, audio, video, document, "
                    "sticker) and a public `url`, or the `storage_key` of a stored attachment",
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
                media_id = await _upload(graph, reply)
                return SendOutcome(await graph.send(message_body(recipient, reply, media_id)))
            except GraphError as exc:
                return send_failure(exc)


async def _upload(graph: GraphClient, reply: OutboundReply) -> str | None:
    """The media id of the reply's stored attachment, uploaded now; None without one."""
    if reply.template is not None or reply.interactive is not None or not reply.attachments:
        return None
    attachment = reply.attachments[0]
    if not is_blob(attachment):
        return None
    key = blob_key(attachment)
    content_type = blob_type(attachment)
    filename = str(attachment.get("filename") or key[:16])
    return await graph.upload_media(reply.blobs[key], content_type, filename)
