"""The delivery worker on both databases, against the local Graph API: a crash between
claim and send loses nothing (the lease ends, another worker sends), two workers at once
send each reply exactly once and in order per conversation, Retry-After is waited, and
the limits (attempts, age) end in `failed` with the provider's error."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, update

from api.services.delivery_worker import backoff_s
from core.db.base import Base
from core.db.types import utcnow
from core.domain.channels import Channel
from core.domain.conversations import Message
from tests.channel_helpers import delivered, fast_delivery, reply, run_worker, upload, worker_for
from tests.factories import TenantCtx, expect
from tests.fake_graph import FakeGraph
from tests.test_whatsapp import current, inbound_thread, wa_channel


async def stored(t: TenantCtx, conversation_id: str, text: str) -> dict[str, Any]:
    found: dict[str, Any] = expect(await reply(t, conversation_id, {"text": text}), 201)
    return found


async def test_a_crash_between_claim_and_send_is_sent_after_the_lease(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15553000001")
    message = await stored(tenant, conversation_id, "Survive the crash")
    settings = fast_delivery(http_timeout_s=0.1, delivery_lease_s=0.4)
    crashed = worker_for(tenant, channel_id, settings=settings)
    [claim] = await crashed.claim(10)  # ... and the process dies before sending
    shown = await current(tenant, message)
    assert (shown["delivery_status"], shown["delivery_attempts"]) == ("queued", 1)
    survivor = worker_for(tenant, channel_id, settings=settings)
    assert await survivor.drain() == 0  # still leased
    assert graph.sends() == []
    assert await survivor.drain(wait_s=5) == 1  # the lease ended: claimed again
    shown = await current(tenant, message)
    assert (shown["delivery_status"], shown["delivery_attempts"]) == ("sent", 2)
    assert len(graph.sends()) == 1
    # The first worker coming back cannot overwrite what the second recorded.
    assert await crashed.deliver(claim) == "superseded"
    assert len(graph.sends()) == 2  # at least once: its late send went out
    assert (await current(tenant, message))["provider_message_id"] == shown["provider_message_id"]


async def test_two_workers_send_each_reply_once_and_in_order(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    graph.delay_s = 0.03  # keeps several sends in flight in both workers
    channel_id = await wa_channel(tenant, graph)
    conversations = [await inbound_thread(tenant, channel_id, f"1555300010{i}") for i in range(5)]
    texts = []
    for n in range(3):
        for i, conversation_id in enumerate(conversations):
            texts.append(f"reply {n} to {i}")
            await stored(tenant, conversation_id, texts[-1])
    settings = fast_delivery(delivery_concurrency=2)
    first = worker_for(tenant, channel_id, settings=settings)
    second = worker_for(tenant, channel_id, settings=settings)
    attempts = await asyncio.gather(first.drain(wait_s=5), second.drain(wait_s=5))
    assert sum(attempts) == len(texts) == 15
    assert first.sent > 0
    assert second.sent > 0
    sent = [body["text"]["body"] for body in graph.sends()]
    assert sorted(sent) == sorted(texts)  # each exactly once
    for i in range(5):
        mine = [text for text in sent if text.endswith(f" to {i}")]
        assert mine == [f"reply {n} to {i}" for n in range(3)]  # in the order written


async def test_a_retried_reply_holds_back_the_next_one_of_its_conversation(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15553000201")
    one = await stored(tenant, conversation_id, "one")
    two = await stored(tenant, conversation_id, "two")
    graph.script.append((500, {"error": {"message": "Service unavailable", "code": 2}}))
    worker = worker_for(tenant, channel_id)
    assert await worker.drain() == 1  # "one" failed; "two" waits behind it
    assert (await current(tenant, two))["delivery_attempts"] == 0
    assert await worker.drain(wait_s=5) == 2
    assert [b["text"]["body"] for b in graph.sends()] == ["one", "one", "two"]
    assert (await current(tenant, one))["delivery_status"] == "sent"
    assert (await current(tenant, two))["delivery_status"] == "sent"


async def test_retry_after_is_waited_and_limits_end_in_failed(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15553000301")
    message = await stored(tenant, conversation_id, "Later")
    busy = {"error": {"message": "Too many messages", "code": 130429}}
    graph.script.append((429, busy, {"Retry-After": "30"}))
    before = utcnow()
    assert await run_worker(tenant, channel_id, wait_s=0) == 1
    shown = await current(tenant, message)
    assert shown["delivery_status"] == "queued"
    due = await _due(tenant, message)
    assert due - before >= timedelta(seconds=29)  # the backoff alone is milliseconds
    await _make_due(tenant, message)
    assert (await delivered(tenant, shown))["delivery_status"] == "sent"

    # Too old to try again: failed after one attempt, though attempts remain.
    old = await stored(tenant, conversation_id, "Too late")
    graph.script.append((503, {"error": {"message": "Unavailable", "code": 2}}))
    failed = await delivered(tenant, old, fast_delivery(delivery_max_age_s=0.001))
    assert (failed["delivery_status"], failed["delivery_attempts"]) == ("failed", 1)
    assert failed["delivery_error"]["code"] == 2


async def test_a_reply_whose_channel_was_disabled_or_blob_lost_fails_with_the_reason(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15553000401")
    runtime = tenant.backend.runtime
    blob = await upload(tenant, b"\x89PNG lost", "image/png")
    image = {"key": blob.key, "content_type": "image/png"}
    lost = expect(await reply(tenant, conversation_id, {"attachments": [image]}), 201)
    path = Path(runtime.settings.attachments_dir) / blob.key[:2] / blob.key[2:4] / blob.key
    path.unlink()
    shown = await delivered(tenant, lost)
    assert (shown["delivery_status"], shown["delivery_error"]["code"]) == (
        "failed",
        "attachment_missing",
    )
    message = await stored(tenant, conversation_id, "Nobody will send me")
    async with runtime.sessions() as session:
        await session.execute(
            update(Channel).where(Channel.id == uuid.UUID(channel_id)).values(is_active=False)
        )
        await session.commit()
    shown = await delivered(tenant, message)
    assert (shown["delivery_status"], shown["delivery_error"]["code"]) == (
        "failed",
        "channel_disabled",
    )
    assert graph.sends() == []


def test_backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after() -> None:
    settings = fast_delivery(delivery_backoff_s=2.0, delivery_backoff_max_s=60.0)
    for attempt, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)):
        delays = {backoff_s(settings, attempt, None) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert backoff_s(settings, 1, 45.0) == 45.0


async def _due(t: TenantCtx, message: dict[str, Any]) -> Any:
    async with t.backend.runtime.sessions() as session:
        found = await session.get(Message, uuid.UUID(message["id"]))
        assert found is not None
        return found.delivery_due_at


async def _make_due(t: TenantCtx, message: dict[str, Any]) -> None:
    async with t.backend.runtime.sessions() as session:
        await session.execute(
            update(Message)
            .where(Message.id == uuid.UUID(message["id"]))
            .values(delivery_due_at=utcnow())
        )
        await session.commit()


def _drift(connection: Connection) -> list[Any]:
    found = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    mine = ("message_templates", "template_syncs", "delivery_attempts", "delivery_due_at")
    return [d for d in found if any(name in str(d) for name in mine)]


async def test_migration_0008_matches_the_model(tenant: TenantCtx) -> None:
    async with tenant.backend.runtime.engine.connect() as connection:
        assert await connection.run_sync(_drift) == []
