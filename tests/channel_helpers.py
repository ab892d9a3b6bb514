"""Helpers the channel tests share: a conversation's messages, a channel's stored count,
an agent's reply and the delivery worker sending it, and the local Graph API's fixtures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from api.schemas.conversations import InboundCustomer, InboundMessage
from api.services import inbound
from api.services.delivery_worker import DeliveryWorker
from core.db.types import utcnow
from core.domain.conversations import Conversation, Message
from core.events.store import EventContext, EventRecorder
from core.settings import ChannelSettings
from tests.factories import TenantCtx, count_rows, expect, get_json
from tests.fake_graph import FakeGraph, signed


async def add_channel(t: TenantCtx, kind: str, name: str, config: dict[str, Any]) -> str:
    """A channel created through the API (as an integration would); its id."""
    body = {"type": kind, "name": name, "config": config}
    created = expect(await t.client.post("/v1/channels", json=body, headers=t.key_headers), 201)
    return str(created["id"])


async def post_signed(
    t: TenantCtx, kind: str, channel_id: str, body: dict[str, Any] | bytes, secret: str
) -> Any:
    """POST `body` to the channel's Meta webhook, signed with `secret` as Meta signs it."""
    raw, headers = signed(body, secret)
    return await t.client.post(f"/webhooks/{kind}/{channel_id}", content=raw, headers=headers)


def start_graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def cleared(graph: FakeGraph) -> FakeGraph:
    graph.calls.clear()
    graph.script.clear()
    graph.templates.clear()
    graph.uploads.clear()
    graph.template_cursors = True
    graph.delay_s = 0.0
    return graph


async def messages_of(t: TenantCtx, conversation_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await get_json(t, f"/v1/conversations/{conversation_id}"))[
        "messages"
    ]
    return found


async def stored_count(t: TenantCtx, channel_id: str) -> int:
    return await count_rows(
        t.backend.runtime, Message.id, Message.channel_id == uuid.UUID(channel_id)
    )


async def reply(t: TenantCtx, conversation_id: str, body: dict[str, Any]) -> Any:
    return await t.client.post(
        f"/v1/conversations/{conversation_id}/messages", json=body, headers=t.agent.headers
    )


async def last_inbound_ago(t: TenantCtx, conversation_id: str, age: timedelta) -> None:
    """Make the customer's last message `age` old (to test messaging windows)."""
    async with t.backend.runtime.sessions() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(conversation_id))
            .values(last_inbound_at=utcnow() - age)
        )
        await session.commit()


def fast_delivery(**changes: Any) -> ChannelSettings:
    """Delivery settings with retries in milliseconds, for tests."""
    values: dict[str, Any] = {
        "delivery_backoff_s": 0.02,
        "delivery_backoff_max_s": 0.1,
        "delivery_max_attempts": 3,
        "http_timeout_s": 5.0,
        "delivery_lease_s": 30.0,
        **changes,
    }
    return ChannelSettings(**values)


def worker_for(
    t: TenantCtx, *channel_ids: str, settings: ChannelSettings | None = None
) -> DeliveryWorker:
    """A delivery worker limited to the test's channels (the backend is shared)."""
    return DeliveryWorker(
        t.backend.runtime,
        settings or fast_delivery(),
        channel_ids=[uuid.UUID(c) for c in channel_ids],
    )


async def run_worker(
    t: TenantCtx, *channel_ids: str, settings: ChannelSettings | None = None, wait_s: float = 10
) -> int:
    """Run the delivery worker until nothing of these channels is due (retries included,
    up to `wait_s`); the number of attempts made."""
    return await worker_for(t, *channel_ids, settings=settings).drain(wait_s=wait_s)


async def delivered(
    t: TenantCtx, message: dict[str, Any], settings: ChannelSettings | None = None
) -> dict[str, Any]:
    """A reply just stored (`queued`), as the API shows it once the worker is done."""
    assert message["delivery_status"] == "queued", message
    await run_worker(t, message["channel_id"], settings=settings)
    found = [
        m for m in await messages_of(t, message["conversation_id"]) if m["id"] == message["id"]
    ]
    return found[0]


async def reply_delivered(
    t: TenantCtx, conversation_id: str, body: dict[str, Any], **settings: Any
) -> dict[str, Any]:
    """POST a reply (201, `queued`) and run the worker until it is sent or failed."""
    stored = expect(await reply(t, conversation_id, body), 201)
    return await delivered(t, stored, fast_delivery(**settings) if settings else None)


@dataclass(frozen=True)
class Uploaded:
    key: str
    # The attachment a reply names it with (`POST /v1/attachments`' `message_attachment`).
    attachment: dict[str, Any]


async def upload(t: TenantCtx, data: bytes, content_type: str, filename: str = "file") -> Uploaded:
    """A file uploaded by the tenant's agent through the API, as a reply's attachment."""
    response = await t.client.post(
        "/v1/attachments",
        files={"file": (filename, data, content_type)},
        headers=t.agent.headers,
    )
    created = expect(response, 201)
    return Uploaded(created["key"], created["message_attachment"])


async def adapter_inbound(
    t: TenantCtx, text: str, attachments: list[dict[str, Any]]
) -> dict[str, Any]:
    """A customer message stored as a channel adapter stores one (its media already put
    into storage by the adapter): through the inbound service, not `POST /v1/inbound`."""
    runtime = t.backend.runtime
    message = InboundMessage(
        channel_id=uuid.UUID(t.channel_id),
        customer=InboundCustomer(external_id=uuid.uuid4().hex),
        text=text,
        attachments=attachments,
        provider_message_id=uuid.uuid4().hex,
    )
    async with runtime.sessions() as session:
        recorder = EventRecorder(session, EventContext(actor_type="channel"))
        outcome = await inbound.receive(session, recorder, uuid.UUID(t.id), message)
    return {"conversation_id": str(outcome.conversation_id)}
