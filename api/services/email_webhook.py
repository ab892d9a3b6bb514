"""Pushed email: the channel's bearer token checked, then the raw message through the
same ingestion as IMAP polling."""

from __future__ import annotations

import hmac
import uuid

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, NotFound, Unauthorized
from api.services.email_inbound import EmailResult, ingest_one
from connectors.email.config import EmailConfig
from connectors.email.parse import MalformedEmail
from core.domain.channels import Channel
from core.domain.enums import ChannelType
from core.events.store import EventRecorder
from core.runtime import Runtime

RAW_TYPES = ("message/rfc822", "message/global")


async def email_channel(
    session: AsyncSession, channel_id: uuid.UUID
) -> tuple[Channel, EmailConfig]:
    channel = await session.get(Channel, channel_id)
    if channel is None or channel.type != ChannelType.EMAIL.value:
        raise NotFound(f"Email channel {channel_id} not found")
    try:
        return channel, EmailConfig.model_validate(channel.config)
    except ValidationError:
        raise Conflict(
            f"channel {channel_id} has no complete email config; update it first",
            code="channel_misconfigured",
        ) from None


def _authorized(authorization: str | None, token: str | None) -> bool:
    if token is None or authorization is None:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


async def handle(
    session: AsyncSession,
    recorder: EventRecorder,
    runtime: Runtime,
    channel_id: uuid.UUID,
    body: bytes,
    authorization: str | None,
    content_type: str | None,
) -> EmailResult:
    channel, config = await email_channel(session, channel_id)
    if not _authorized(authorization, config.webhook_token):
        raise Unauthorized(
            "Authorization must be 'Bearer <the channel's webhook_token>'"
            + ("" if config.webhook_token else "; the channel has none set"),
            code="bad_token",
        )
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    if bare not in RAW_TYPES:
        raise BadRequest(
            f"expected Content-Type message/rfc822 with the raw message, got {bare or 'none'!r}",
            code="unsupported_content_type",
        )
    try:
        return await ingest_one(session, recorder, runtime, channel, config, body)
    except MalformedEmail as exc:
        raise BadRequest(f"malformed email: {exc}", code="malformed_email") from None
