"""The web chat widget's work, shared by its WebSocket and its REST fallback: the channel
and its origin check, visitor sessions, visitor messages into the generic inbound path,
the visitor's history, and receipts on agent replies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized, Unprocessable
from api.schemas.conversations import InboundCustomer, InboundMessage
from api.schemas.customers import IdentityIn
from api.services import inbound
from connectors.web import token as tokens
from connectors.web.config import WebConfig
from connectors.web.payload import (
    ReceiptIn,
    SessionIn,
    VisitorMessageIn,
    provider_id,
    widget_message,
)
from connectors.web.token import Visitor, VisitorTokenError
from core.db.types import utcnow
from core.domain.channels import Channel
from core.domain.conversations import Conversation, Message
from core.domain.customers import CustomerIdentity
from core.domain.enums import ChannelType, ContentType, DeliveryStatus, Direction, IdentityKind
from core.events.store import EventContext, EventRecorder
from core.ratelimit import WindowCounter
from core.settings import WidgetSettings

_messages = cast(Table, Message.__table__)
_conversations = cast(Table, Conversation.__table__)
# A poll re-reads this far behind its cursor: a transaction that stamped its row earlier
# may commit after a later one was read. The widget drops what it already shows.
CURSOR_OVERLAP = timedelta(seconds=10)
_MOVES_FROM = {
    DeliveryStatus.DELIVERED.value: (DeliveryStatus.QUEUED.value, DeliveryStatus.SENT.value),
    DeliveryStatus.READ.value: (
        DeliveryStatus.QUEUED.value,
        DeliveryStatus.SENT.value,
        DeliveryStatus.DELIVERED.value,
    ),
}


@dataclass(frozen=True)
class WidgetChannel:
    id: uuid.UUID
    tenant_id: uuid.UUID
    config: WebConfig


@dataclass(frozen=True)
class Posted:
    created: bool
    message: dict[str, Any]  # as the widget shows it
    conversation_id: uuid.UUID


async def web_channel(session: AsyncSession, channel_id: uuid.UUID) -> WidgetChannel:
    """The active web channel with this id; 404 / 409 otherwise."""
    channel = await session.get(Channel, channel_id)
    if channel is None or channel.type != ChannelType.WEB.value:
        raise NotFound(f"web chat channel {channel_id} not found", code="channel_not_found")
    if not channel.is_active:
        raise Conflict(f"channel {channel_id} is disabled", code="channel_disabled")
    try:
        config = WebConfig.model_validate(channel.config)
    except ValidationError:
        raise Conflict(
            f"channel {channel_id}'s config is not a valid web chat config; an admin must fix it",
            code="invalid_channel_config",
        ) from None
    return WidgetChannel(channel.id, channel.tenant_id, config)


def check_origin(channel: WidgetChannel, origin: str | None, host: str | None) -> None:
    if not channel.config.allows(origin, host):
        raise Forbidden(
            f"the web chat channel does not allow pages of {origin}",
            code="origin_not_allowed",
            details={"origin": origin},
        )


def visitor_of(channel: WidgetChannel, token: str | None) -> Visitor:
    if not token:
        raise Unauthorized("send the visitor token", code="missing_visitor_token")
    try:
        return tokens.read(channel.config.visitor_token_secret, channel.id, token)
    except VisitorTokenError as exc:
        raise Unauthorized(
            str(exc), code="invalid_visitor_token", details={"reason": exc.reason}
        ) from None


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


async def limit(counter: WindowCounter, key: str, per_minute: int, what: str) -> None:
    """429 once `key` has been used more than `per_minute` times this minute."""
    if per_minute <= 0:
        return
    if await counter.hit(f"widget:{key}", 60) > per_minute:
        raise RateLimited(
            f"too many {what}: at most {per_minute} a minute",
            headers={"Retry-After": str(60 - int(utcnow().timestamp()) % 60)},
        )


def start_session(channel: WidgetChannel, data: SessionIn) -> dict[str, Any]:
    """A token for a new visitor, or a renewed one for the visitor of `data.token` (401 if
    it is not valid: the widget then starts over as a new visitor)."""
    if data.token is not None:
        known = visitor_of(channel, data.token)
    else:
        known = Visitor(tokens.new_visitor_id())
    visitor = Visitor(
        known.id,
        data.name.strip() if data.name and data.name.strip() else known.name,
        str(data.email).lower() if data.email else known.email,
    )
    ttl = timedelta(days=channel.config.visitor_token_ttl_days)
    token, expires = tokens.issue(channel.config.visitor_token_secret, channel.id, visitor, ttl)
    return {
        "channel_id": str(channel.id),
        "visitor_id": visitor.id,
        "token": token,
        "expires_at": expires.isoformat(),
        "config": channel.config.public(),
    }


def recorder(
    session: AsyncSession, channel_id: uuid.UUID, correlation: str | None
) -> EventRecorder:
    # No principal: as for provider webhooks, the events name the channel as their actor.
    context = EventContext(
        correlation_id=correlation, actor_type="channel", actor_id=str(channel_id)
    )
    return EventRecorder(session, context)


def _inbound(channel: WidgetChannel, visitor: Visitor, data: VisitorMessageIn) -> InboundMessage:
    return InboundMessage(
        channel_id=channel.id,
        customer=InboundCustomer(
            identity=IdentityIn(kind=IdentityKind.WEB, value=visitor.id),
            name=visitor.name,
            email=visitor.email,
        ),
        text=data.text,
        content_type=ContentType.TEXT,
        provider_message_id=provider_id(visitor.id, data.client_id),
        metadata={"source": "web_widget"},
    )


async def post_message(
    session: AsyncSession,
    events: EventRecorder,
    counter: WindowCounter,
    settings: WidgetSettings,
    channel: WidgetChannel,
    visitor: Visitor,
    data: VisitorMessageIn,
) -> Posted:
    """Store the visitor's message through the inbound path every channel uses; a message
    sent again with the same `client_id` is the stored one (`created: False`)."""
    if len(data.text) > settings.max_text_chars:
        raise Unprocessable(
            f"a message is at most {settings.max_text_chars} characters",
            code="text_too_long",
            details={"client_id": str(data.client_id), "length": len(data.text)},
        )
    await limit(counter, f"msg:{visitor.id}", settings.messages_per_minute, "messages")
    outcome = await inbound.receive(
        session, events, channel.tenant_id, _inbound(channel, visitor, data)
    )
    stored = outcome.message
    return Posted(
        outcome.created,
        widget_message(
            provider_message_id=str(stored["provider_message_id"]),
            direction=str(stored["direction"]),
            text=str(stored["text"]),
            sent_at=_iso(stored["sent_at"]),
            status=str(stored["delivery_status"]),
            visitor_id=visitor.id,
        ),
        outcome.conversation_id,
    )


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


async def _customer_of(
    session: AsyncSession, channel: WidgetChannel, visitor_id: str
) -> uuid.UUID | None:
    found: uuid.UUID | None = await session.scalar(
        select(CustomerIdentity.customer_id).where(
            CustomerIdentity.tenant_id == channel.tenant_id,
            CustomerIdentity.kind == IdentityKind.WEB.value,
            CustomerIdentity.value == visitor_id,
        )
    )
    return found


def _threads(channel: WidgetChannel, customer_id: uuid.UUID) -> Any:
    c = _conversations.c
    return select(c.id).where(
        c.tenant_id == channel.tenant_id,
        c.channel_id == channel.id,
        c.customer_id == customer_id,
    )


async def history(
    session: AsyncSession,
    channel: WidgetChannel,
    visitor_id: str,
    *,
    after: datetime | None = None,
    limit_to: int = 100,
) -> tuple[list[dict[str, Any]], str]:
    """The visitor's messages on this channel, oldest first, and the cursor to poll from.

    Without `after`: the latest `limit_to`. With it: those that appeared or changed since
    (a little before, see CURSOR_OVERLAP). An agent reply appears once it was handed to
    the channel (it then has its provider id), never while it is still queued."""
    now = utcnow()
    customer_id = await _customer_of(session, channel, visitor_id)
    if customer_id is None:
        return [], (after or now).isoformat()
    m = _messages.c
    visible = (m.direction == Direction.INBOUND.value) | m.provider_message_id.is_not(None)
    statement = select(
        m.provider_message_id,
        m.direction,
        m.text,
        m.sent_at,
        m.delivery_status,
        m.updated_at,
        m.created_at,
        m.id,
    ).where(m.conversation_id.in_(_threads(channel, customer_id)), visible)
    if after is None:
        statement = statement.order_by(m.created_at.desc(), m.id.desc()).limit(limit_to)
    else:
        statement = (
            statement.where(m.updated_at > after - CURSOR_OVERLAP)
            .order_by(m.created_at.desc(), m.id.desc())
            .limit(max(limit_to, 500))
        )
    rows = list(reversed((await session.execute(statement)).all()))
    latest = max((row.updated_at for row in rows), default=None)
    cursor = max(latest, after) if latest and after else latest or after or now
    messages = [
        widget_message(
            provider_message_id=str(row.provider_message_id or row.id),
            direction=row.direction,
            text=row.text,
            sent_at=_iso(row.sent_at),
            status=row.delivery_status,
            visitor_id=visitor_id,
        )
        for row in rows
    ]
    return messages, cursor.isoformat()


async def mark(
    session: AsyncSession, channel: WidgetChannel, visitor_id: str, data: ReceiptIn
) -> int:
    """Move the visitor's agent replies named by `data.ids` forward to `data.status`
    (never back, never from `failed`); how many moved."""
    customer_id = await _customer_of(session, channel, visitor_id)
    if customer_id is None or not data.ids:
        return 0
    m = _messages.c
    result = await session.execute(
        update(_messages)
        .where(
            m.channel_id == channel.id,
            m.provider_message_id.in_(data.ids),
            m.direction == Direction.OUTBOUND.value,
            m.delivery_status.in_(_MOVES_FROM[data.status]),
            m.conversation_id.in_(_threads(channel, customer_id)),
        )
        .values(delivery_status=data.status, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
