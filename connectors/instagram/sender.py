"""Agent replies out through Instagram's Send API (`POST /{ig_user_id}/messages`).

Rule: a business may answer within 24 hours of the customer's last message; with the
`HUMAN_AGENT` tag (a person answering, asked for explicitly on the reply) up to 7 days.

Media goes by public URL only: the Send API of the Instagram API with Instagram Login
(`/{ig_user_id}/messages`) takes `attachment.payload.url`, and Meta documents no upload
for it (the Attachment Upload API, `/{page_id}/message_attachments`, belongs to the
Page-linked Messenger Platform flavour, and takes images only from a URL there too). A
reply with a stored attachment (`key`) is refused with the reason. The Send API takes no
idempotency key: a send the worker repeats after a lost answer arrives twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connectors.instagram.config import InstagramConfig
from connectors.meta.graph import GraphError, MetaGraph, RetryPolicy, missing_id, send_failure
from connectors.meta.window import STANDARD_WINDOW, within
from connectors.sender import OutboundReply, SendOutcome, is_blob
from core.domain.enums import IdentityKind
from core.settings import ChannelSettings

HUMAN_AGENT_WINDOW = timedelta(days=7)
# What RelayDesk attachment types are called by the Send API.
SEND_TYPES = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "file": "file",
    "document": "file",
}


def message_body(recipient: str, reply: OutboundReply) -> dict[str, Any]:
    """The Send API request body for one reply: one media by link, or text."""
    if reply.attachments:
        attachment = reply.attachments[0]
        message: dict[str, Any] = {
            "attachment": {
                "type": SEND_TYPES[str(attachment["type"])],
                "payload": {"url": attachment["url"]},
            }
        }
    else:
        message = {"text": reply.text}
    body: dict[str, Any] = {"recipient": {"id": recipient}, "message": message}
    if reply.human_agent:
        body |= {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    return body


def _shape_refusal(reply: OutboundReply) -> tuple[str, str] | None:
    if reply.template is not None or reply.interactive is not None:
        return (
            "unsupported_reply",
            "Instagram replies are text or one media attachment (no template or interactive)",
        )
    if len(reply.attachments) > 1 or (reply.attachments and reply.text.strip()):
        return (
            "unsupported_attachment",
            "Instagram sends one attachment per message, without a caption: send the text "
            "and each attachment as replies of their own",
        )
    for attachment in reply.attachments:
        if is_blob(attachment):
            return (
                "unsupported_attachment",
                "Instagram's Send API takes media by public `url` only (no upload): give the "
                "attachment's `url` instead of a stored file's `storage_key`",
            )
        if attachment.get("type") not in SEND_TYPES or not attachment.get("url"):
            return (
                "unsupported_attachment",
                "Instagram attachments need a `type` (image, video, audio, file) and a "
                "public `url`",
            )
    return None


class InstagramSender:
    identity_kind = IdentityKind.INSTAGRAM
    in_request = False

    def __init__(self, settings: ChannelSettings) -> None:
        self.policy = RetryPolicy.single(settings)

    def refusal(
        self, reply: OutboundReply, last_inbound_at: datetime | None
    ) -> tuple[str, str] | None:
        shape = _shape_refusal(reply)
        if shape is not None:
            return shape
        if reply.human_agent:
            if within(last_inbound_at, HUMAN_AGENT_WINDOW):
                return None
            return (
                "outside_service_window",
                "the customer's last message is more than 7 days old: Instagram allows no "
                "reply until the customer writes again",
            )
        if within(last_inbound_at, STANDARD_WINDOW):
            return None
        return (
            "outside_service_window",
            "the customer's last message is more than 24 hours old: outside Instagram's "
            "messaging window a person may still answer for 7 days with the HUMAN_AGENT "
            "tag (give `human_agent: true`)",
        )

    async def send(
        self, config: dict[str, Any], recipient: str, reply: OutboundReply
    ) -> SendOutcome:
        settings = InstagramConfig.model_validate(config)
        async with MetaGraph(
            settings.access_token, str(settings.graph_api_base_url), self.policy
        ) as graph:
            try:
                answer = await graph.post_message(
                    settings.ig_user_id, message_body(recipient, reply)
                )
                if not answer.get("message_id"):
                    raise missing_id()
                return SendOutcome(str(answer["message_id"]))
            except GraphError as exc:
                return send_failure(exc)
