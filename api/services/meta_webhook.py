"""What Meta's channel webhooks (WhatsApp, Instagram) share: finding the channel and its
config, the subscription check, the body's signature, duplicate detection, media into
attachment storage, and moving an outbound message's delivery status forward."""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar, cast

from pydantic import ValidationError
from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from api.schemas.conversations import InboundMessage
from api.services import inbound
from api.services.channel_cache import WEBHOOK_CHANNELS, WebhookChannel
from connectors.meta.config import MetaAppConfig
from connectors.meta.graph import GraphError, RetryPolicy
from connectors.meta.payload import MalformedPayload
from connectors.meta.signature import signature_valid
from core.domain.channels import Channel
from core.domain.conversations import Message
from core.domain.enums import ChannelType, DeliveryStatus
from core.events.store import EventRecorder
from core.runtime import Runtime
from core.storage import AttachmentRejected

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=MetaAppConfig)
_channels = cast(Table, Channel.__table__)
P = TypeVar("P")

# A status only moves forward (Meta may deliver `delivered` after `read`).
_RANK = {
    DeliveryStatus.QUEUED.value: 0,
    DeliveryStatus.SENT.value: 1,
    DeliveryStatus.DELIVERED.value: 2,
    DeliveryStatus.READ.value: 3,
}


_CHANNEL = select(_channels.c.tenant_id, _channels.c.type, _channels.c.config).where(
    _channels.c.id == bindparam("id")
)


async def channel_config(
    session: AsyncSession,
    channel_id: uuid.UUID,
    kind: ChannelType,
    model: type[C],
    runtime: Runtime | None = None,
) -> tuple[WebhookChannel, C]:
    """The channel and its validated config; with `runtime`, reused for a few seconds
    (api/services/channel_cache.py)."""
    if runtime is not None:
        found = WEBHOOK_CHANNELS.get(runtime, (channel_id, kind))
        if found is not None:
            return found[0], cast(C, found[1])
    row = (await session.execute(_CHANNEL, {"id": channel_id})).first()
    label = kind.value.capitalize()
    if row is None or row.type != kind.value:
        raise NotFound(f"{label} channel {channel_id} not found")
    try:
        config = model.model_validate(row.config)
    except ValidationError:
        raise Conflict(
            f"channel {channel_id} has no complete {label} config; update it first",
            code="channel_misconfigured",
        ) from None
    channel = WebhookChannel(channel_id, row.tenant_id)
    if runtime is not None:
        ttl_s = runtime.settings.api.auth_cache_seconds
        WEBHOOK_CHANNELS.put(runtime, (channel_id, kind), (channel, config), ttl_s)
    return channel, config


async def verify_subscription(
    session: AsyncSession,
    channel_id: uuid.UUID,
    kind: ChannelType,
    model: type[MetaAppConfig],
    query: tuple[str | None, str | None, str | None],
) -> str:
    """Meta's verification request (`hub.mode=subscribe` with the channel's verify token):
    the `hub.challenge` to echo."""
    mode, token, challenge = query
    _, config = await channel_config(session, channel_id, kind, model)
    if mode != "subscribe" or token is None:
        raise Forbidden("expected hub.mode=subscribe with hub.verify_token", code="bad_verify")
    if not hmac.compare_digest(token.encode(), config.verify_token.encode()):
        raise Forbidden("hub.verify_token does not match the channel's", code="bad_verify")
    if not challenge:
        raise BadRequest("hub.challenge is missing", code="bad_verify")
    return challenge


def signed_body(
    kind: ChannelType,
    config: MetaAppConfig,
    body: bytes,
    signature: str | None,
    parse: Callable[[bytes], P],
) -> P:
    """The decoded body once its signature holds: 401 when it does not, 400 when the body
    is malformed (checked whole before anything is stored)."""
    if not signature_valid(body, signature, config.app_secret):
        raise Unauthorized(
            "X-Hub-Signature-256 is missing or does not match the body", code="bad_signature"
        )
    try:
        return parse(body)
    except MalformedPayload as exc:
        raise BadRequest(
            f"malformed {kind.value} webhook: {exc}", code="malformed_webhook"
        ) from None


def check_storable(kind: ChannelType, builds: Iterable[Callable[[], InboundMessage]]) -> None:
    """Build every message's inbound form once, with placeholders for its media, so a body
    holding one the inbound path refuses (a text over the limit, too many attachments, ...)
    is a 400 before anything of it is stored, like any other malformed body."""
    for build in builds:
        try:
            build()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise BadRequest(
                f"malformed {kind.value} webhook: {problems}", code="malformed_webhook"
            ) from None


def retry_policy(runtime: Runtime) -> RetryPolicy:
    return RetryPolicy.of(runtime.settings.channels)


async def already_stored(session: AsyncSession, channel_id: uuid.UUID, provider_id: str) -> bool:
    # Checked before fetching media, so a redelivered body costs no Graph API calls.
    found = await session.scalar(
        select(Message.id).where(
            Message.channel_id == channel_id, Message.provider_message_id == provider_id
        )
    )
    return found is not None


async def store_once(
    session: AsyncSession,
    recorder: EventRecorder,
    channel: WebhookChannel,
    provider_message_id: str,
    message: Callable[[], Awaitable[InboundMessage]],
    *,
    fetches_media: bool,
) -> bool:
    """Store the message `message()` builds through the inbound path, unless one with this
    provider id is stored already: True when stored now. A message whose build fetches
    media is looked up first, so a duplicate's media is never fetched; any other is left
    to the inbound path's own idempotency (a statement fewer on the webhook's hot path)."""
    if fetches_media and await already_stored(session, channel.id, provider_message_id):
        return False
    # `inbound.receive` commits each message, and a recorder caches aggregate versions for
    # the transaction it recorded in: reusing one across a body's messages numbered the
    # next event from a version another request had since taken (a 500 on a burst).
    fresh = EventRecorder(session, recorder.context)
    outcome = await inbound.receive(session, fresh, channel.tenant_id, await message())
    return outcome.created


async def store_each(
    session: AsyncSession,
    recorder: EventRecorder,
    channel: WebhookChannel,
    messages: Sequence[P],
    build: Callable[[P], Awaitable[InboundMessage]],
    *,
    provider_id: Callable[[P], str],
    fetches_media: Callable[[P], bool],
) -> tuple[int, int]:
    """`store_once` for each message of a body, in order: how many were stored now and
    how many were duplicates."""
    stored = duplicates = 0
    for message in messages:
        if await store_once(
            session,
            recorder,
            channel,
            provider_id(message),
            partial(build, message),
            fetches_media=fetches_media(message),
        ):
            stored += 1
        else:
            duplicates += 1
    return stored, duplicates


async def stored_media(
    runtime: Runtime,
    attachment: dict[str, Any],
    fetch: Callable[[int], Awaitable[tuple[bytes, str]]],
    provider_message_id: str,
) -> dict[str, Any]:
    """The attachment with its bytes (from `fetch(max_bytes)`) put into storage; a fetch that
    fails keeps it, marked unavailable with the reason, so the message is never lost."""
    try:
        data, mime = await fetch(runtime.settings.storage.max_attachment_bytes)
        fallback = str(attachment.get("mime_type") or "application/octet-stream")
        blob = await runtime.attachments.put(data, mime or fallback)
    except (GraphError, AttachmentRejected) as exc:
        logger.warning("media of %s not stored: %s", provider_message_id, exc)
        return {**attachment, "status": "unavailable", "error": str(exc)}
    return {
        **attachment,
        "status": "stored",
        "storage_key": blob.key,
        "size": blob.size,
        "mime_type": blob.content_type,
    }


def advance(message: Message, status: str) -> None:
    """Move an outbound message's delivery status forward, never back."""
    if status in _RANK and _RANK[status] > _RANK.get(message.delivery_status, 0):
        message.delivery_status = status
