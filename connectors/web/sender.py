"""Agent replies out to the web widget: pushed to the visitor's open sockets.

The reply is already stored when `send` runs, so the database is the visitor's mailbox:
the push is how an open widget hears of it at once. `sent` therefore means "on its way
to the visitor": pushed to every socket they hold now, or read from the history the next
time the widget opens; the widget's receipts then move it to `delivered` (shown) and
`read` (the chat open in front of the visitor). A push that fails (Redis unreachable) is
logged, not an error: an open socket's catch-up reads the reply from the database."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from connectors.sender import OutboundReply, SendOutcome
from connectors.web.payload import agent_provider_id, push_key, widget_message
from core import push
from core.db.types import utcnow
from core.domain.enums import ContentType, DeliveryStatus, Direction, IdentityKind
from core.settings import ChannelSettings

logger = logging.getLogger(__name__)


class WebSender:
    identity_kind = IdentityKind.WEB
    in_request = True

    def __init__(self, settings: ChannelSettings) -> None:
        self.push_url = settings.web_push_url

    def refusal(
        self, reply: OutboundReply, last_inbound_at: datetime | None
    ) -> tuple[str, str] | None:
        if reply.template is not None or reply.interactive is not None:
            return "unsupported_reply", "web chat replies are text (no template or interactive)"
        if reply.attachments or reply.content_type != ContentType.TEXT.value:
            return "unsupported_attachment", "the web chat widget shows text replies only"
        return None

    async def send(
        self, config: dict[str, Any], recipient: str, reply: OutboundReply
    ) -> SendOutcome:
        provider_message_id = agent_provider_id()
        message = widget_message(
            provider_message_id=provider_message_id,
            direction=Direction.OUTBOUND.value,
            text=reply.text,
            sent_at=utcnow().isoformat(),
            status=DeliveryStatus.SENT.value,
            visitor_id=recipient,
        )
        try:
            await push.publish(self.push_url, push_key(recipient), {"message": message})
        except Exception as exc:
            logger.warning("web reply %s stored but not pushed: %s", provider_message_id, exc)
        return SendOutcome(provider_message_id=provider_message_id)
