"""Helpers the channel tests share: a conversation's messages, a channel's stored count,
an agent's reply, and the local Graph API's fixtures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from core.db.types import utcnow
from core.domain.conversations import Conversation, Message
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
