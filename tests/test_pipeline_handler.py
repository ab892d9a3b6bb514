"""The enrichment handler on SQLite and PostgreSQL: one transaction per batch, effects once,
redeliveries harmless, failures reported, the embedded subscriber and its catch-up, and
the analysis on the conversation API. (Kafka and Ray: test_pipeline_kafka.py,
test_pipeline_ray.py.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import func, select

from core.domain.analyses import ConversationInsight, MessageAnalysis
from core.domain.tickets import Ticket
from core.events.bus import BusMessage, InMemoryEventBus
from core.events.relay import OutboxRelay
from core.events.store import EventRecord, OutboxRecord
from core.runtime import Runtime
from core.settings import PipelineSettings
from pipelines.embedded import EmbeddedPipeline
from pipelines.handler import EnrichmentHandler
from pipelines.items import WorkItem
from pipelines.schemas import (
    InvalidPayload,
    NotAMessageEvent,
    decode_message_event,
)
from tests.conftest import serving
from tests.factories import Backend, TenantCtx, create_ticket, expect, inbound, make_tenant
from tests.pipeline_doubles import FAIL, StubModels

if TYPE_CHECKING:
    from models.analyzer import Analyzer


async def _no_sleep(_seconds: float) -> None:
    return None


def handler_for(backend: Backend, models: Any = None, **settings: Any) -> EnrichmentHandler:
    return EnrichmentHandler(
        backend.runtime.sessions,
        models or StubModels(),
        PipelineSettings(**settings),
        sleep=_no_sleep,
    )


async def work_items(t: TenantCtx) -> list[WorkItem]:
    """The tenant's message events as the relay would publish them, oldest first."""
    async with t.backend.runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(OutboxRecord)
                .where(
                    OutboxRecord.tenant_id == uuid.UUID(t.id),
                    OutboxRecord.event_type == "message.received",
                )
                .order_by(OutboxRecord.id)
            )
        ).all()
    return [WorkItem.of(decode_message_event(row.payload)) for row in rows]


async def count(backend: Backend, query: Any) -> int:
    async with backend.runtime.sessions() as session:
        return int(await session.scalar(query) or 0)


def analyzed_events(conversation_id: str) -> Any:
    return (
        select(func.count())
        .select_from(EventRecord)
        .where(
            EventRecord.aggregate_id == uuid.UUID(conversation_id),
            EventRecord.event_type == "message.analyzed",
        )
    )


def analyses_of(t: TenantCtx) -> Any:
    return (
        select(func.count())
        .select_from(MessageAnalysis)
        .where(MessageAnalysis.tenant_id == uuid.UUID(t.id))
    )


async def test_a_batch_is_recorded_once_with_its_effects(tenant: TenantCtx) -> None:
    backend = tenant.backend
    texts = ["Hello there", "Where is my order 4411?", "I am angry, this is terrible and urgent"]
    first = await inbound(tenant, external_id="ana", text=texts[0])
    conversation_id = first["conversation_id"]
    ticket = await create_ticket(tenant, conversation_id=conversation_id)
    for text in texts[1:]:
        await inbound(tenant, external_id="ana", text=text)
    items = await work_items(tenant)
    assert len(items) == 3

    outcome = await handler_for(backend).handle(items)
    assert len(outcome.result.written) == 3
    assert not outcome.failed

    # The same events again, as a redelivery would bring them, by a fresh consumer that
    # has no idea what was done: no new row, no new event, no second effect.
    again = await handler_for(backend).handle(items)
    assert again.result.written == []
    assert again.result.duplicates == 3
    # A consumer that knows the current models does not even ask them.
    repeat = handler_for(backend)
    repeat.current_version = outcome.result.written[0].model_version
    skipped = await repeat.handle(items)
    assert skipped.skipped == 3
    assert repeat.models.calls == []

    assert await count(backend, analyses_of(tenant)) == 3
    assert await count(backend, analyzed_events(conversation_id)) == 3
    async with backend.runtime.sessions() as session:
        insight = await session.get_one(ConversationInsight, uuid.UUID(conversation_id))
        stored = await session.get_one(Ticket, uuid.UUID(ticket["id"]))
        updates = await session.scalar(
            select(func.count())
            .select_from(EventRecord)
            .where(
                EventRecord.aggregate_id == stored.id, EventRecord.event_type == "ticket.updated"
            )
        )
    assert insight.analyzed_messages == 3
    assert insight.last_message_id == items[-1].message_id
    assert insight.suggested_priority == "urgent"
    assert insight.sentiment_trend == "worsening"
    assert insight.language == "en"
    assert stored.custom_fields["ai"]["suggested_priority"] == "urgent"
    assert {"intent:greeting", "intent:order_status"} <= set(stored.tags)
    assert stored.version == ticket["version"] + 1  # one update for the batch
    assert updates == 1

    detail = expect(
        await tenant.client.get(
            f"/v1/conversations/{conversation_id}", headers=tenant.agent.headers
        ),
        200,
    )
    assert {"intent:greeting", "intent:order_status"} <= set(detail["tags"])
    analyses = [m["analysis"] for m in detail["messages"]]
    assert [a["intent"] for a in analyses] == ["greeting", "order_status", None]
    assert analyses[2]["sentiment"] == "negative"
    assert analyses[2]["urgency"] == "urgent"
    assert all(a["model_version"] == analyses[0]["model_version"] for a in analyses)
    assert detail["ai"]["suggested_priority"] == "urgent"
    assert detail["ai"]["analyzed_messages"] == 3


async def test_effects_follow_message_order_across_batches(tenant: TenantCtx) -> None:
    backend = tenant.backend
    texts = [f"Where is my order {n}?" for n in range(5)] + ["thanks, all good"]
    for text in texts:
        conversation_id = (await inbound(tenant, external_id="bo", text=text))["conversation_id"]
    items = await work_items(tenant)
    handler = handler_for(backend)
    for start in range(0, len(items), 2):
        await handler.handle(items[start : start + 2])
    async with backend.runtime.sessions() as session:
        payloads = (
            await session.scalars(
                select(EventRecord.payload)
                .where(
                    EventRecord.aggregate_id == uuid.UUID(conversation_id),
                    EventRecord.event_type == "message.analyzed",
                )
                .order_by(EventRecord.aggregate_version)
            )
        ).all()
        insight = await session.get_one(ConversationInsight, uuid.UUID(conversation_id))
    assert [p["message_id"] for p in payloads] == [str(i.message_id) for i in items]
    assert insight.last_message_id == items[-1].message_id
    assert insight.sentiment == "positive"
    assert insight.sentiment_trend == "improving"


async def test_failures_are_reported_and_do_not_hold_back_the_batch(tenant: TenantCtx) -> None:
    backend = tenant.backend
    for text in ["Where is my order?", f"{FAIL} unreadable", "hello again"]:
        await inbound(tenant, external_id="cy", text=text)
    items = await work_items(tenant)
    ghost = WorkItem(
        message_id=uuid.uuid4(),
        tenant_id=items[0].tenant_id,
        conversation_id=items[0].conversation_id,
        channel_id=items[0].channel_id,
        inbound=True,
        text="a message deleted before it was analyzed",
    )
    models = StubModels()
    outcome = await handler_for(backend, models, max_attempts=3).handle([*items, ghost])
    assert len(outcome.result.written) == 2
    reasons = {f.item.message_id: f.reason for f in outcome.failed}
    assert reasons == {
        items[1].message_id: "enrichment_failed",
        ghost.message_id: "unknown_message",
    }
    failed = next(f for f in outcome.failed if f.reason == "enrichment_failed")
    assert "could not read" in failed.error
    assert failed.attempts == 3
    # 3 tries of the batch, then 3 of the poison message alone and 1 of each good one
    assert len(models.calls) == 3 + 3 + 3
    assert outcome.retries == 2 + 2


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe not json", "invalid_json"),
        (b"[1, 2]", "invalid_envelope"),
        (b'{"schema_version": 2}', "unsupported_schema_version"),
        (b'{"schema_version": 1, "event_id": "x"}', "invalid_envelope"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        decode_message_event(value)
    assert caught.value.reason == reason
    assert caught.value.error


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "tenant_id": str(uuid.uuid4()),
        "aggregate_type": "conversation",
        "aggregate_id": str(uuid.uuid4()),
        "aggregate_version": 1,
        "occurred_at": "2026-01-01T00:00:00+00:00",
        "data": data,
    }


def test_message_events_are_validated_and_others_passed_over() -> None:
    with pytest.raises(InvalidPayload) as caught:
        decode_message_event(envelope("message.received", {"message_id": "nope"}))
    assert caught.value.reason == "invalid_message"
    assert "message_id" in caught.value.error
    with pytest.raises(NotAMessageEvent):
        decode_message_event(envelope("ticket.created", {}))


async def test_embedded_pipeline_enriches_what_the_relay_publishes(backend: Backend) -> None:
    # A runtime of its own: its in-process bus has the subscriber, the session's does not.
    async with serving(backend.name, backend.settings) as own:
        t = await make_tenant(own)
        await own.runtime.relay.drain()  # earlier tests' events: not this test's business
        pipeline = EmbeddedPipeline(
            own.settings,
            own.runtime.sessions,
            StubModels(),
            bus=own.runtime.bus,  # type: ignore[arg-type]
            catch_up=False,
        )
        pipeline.start()
        try:
            # A poison event on the bus: dead-lettered, and the next message still flows.
            await own.runtime.bus.publish_batch(
                [BusMessage("messages.received", "k", {"schema_version": 1, "oops": True})]
            )
            posted = await inbound(t, external_id="em", text="Where is my order 77?")
            await own.runtime.relay.drain()
            await pipeline.wait_idle(timeout_s=10)
            detail = expect(
                await t.client.get(
                    f"/v1/conversations/{posted['conversation_id']}", headers=t.agent.headers
                ),
                200,
            )
        finally:
            await pipeline.stop()
    assert detail["messages"][0]["analysis"]["intent"] == "order_status"
    assert [d.reason for d in pipeline.dead_letters] == ["invalid_envelope"]
    status = pipeline.status()
    assert status["stats"]["messages"] == 1
    assert status["stats"]["dead_letters"] == 1


async def test_embedded_catch_up_enriches_messages_stored_while_it_was_down(
    tenant: TenantCtx,
) -> None:
    backend = tenant.backend
    for n in range(3):
        await inbound(tenant, external_id=f"down-{n}", text=f"hello {n}")
    pipeline = EmbeddedPipeline(backend.settings, backend.runtime.sessions, StubModels())
    assert await pipeline.backfill(uuid.UUID(tenant.id)) == 3
    assert await count(backend, analyses_of(tenant)) == 3
    assert await pipeline.backfill(uuid.UUID(tenant.id)) == 0  # nothing left
    await asyncio.sleep(0)


async def test_replay_after_a_model_change_adds_rows_and_keeps_the_old(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    from datetime import timedelta

    from core.db.types import utcnow
    from pipelines.replay import replay

    backend = tenant.backend
    since = utcnow() - timedelta(seconds=1)
    texts = ["Where is my order?", "refund please", "hello"]
    for text in texts:
        posted = await inbound(tenant, external_id="re", text=text)
    await inbound(other_tenant, external_id="re", text="hello from elsewhere")
    await handler_for(backend, StubModels("v1")).handle(await work_items(tenant))
    sessions = backend.runtime.sessions
    settings = PipelineSettings()
    tenant_id = uuid.UUID(tenant.id)

    dry = await replay(
        sessions, StubModels("v2"), settings, since=since, tenant_id=tenant_id, dry_run=True
    )
    assert dry.messages == 3
    assert dry.written == 3
    assert len(dry.before) == 1
    assert await count(backend, analyses_of(tenant)) == 3  # a dry run writes nothing

    seen: list[tuple[int, int]] = []
    done = await replay(
        sessions,
        StubModels("v2"),
        settings,
        since=since,
        tenant_id=tenant_id,
        batch_size=2,
        progress=lambda n, total: seen.append((n, total)),
    )
    assert done.written == 3
    assert done.failed == 0
    assert done.model_version is not None
    assert done.model_version not in dry.before
    assert done.written_by_version == {done.model_version: 3}
    assert seen == [(2, 3), (3, 3)]
    async with sessions() as session:
        rows = (
            await session.execute(
                select(MessageAnalysis.model_version, MessageAnalysis.source, func.count())
                .where(MessageAnalysis.tenant_id == tenant_id)
                .group_by(MessageAnalysis.model_version, MessageAnalysis.source)
            )
        ).all()
    assert sorted((source, n) for _, source, n in rows) == [("pipeline", 3), ("replay", 3)]
    # the other tenant was left alone, and reads show the newest analysis
    assert await count(backend, analyses_of(other_tenant)) == 0
    detail = expect(
        await tenant.client.get(
            f"/v1/conversations/{posted['conversation_id']}", headers=tenant.agent.headers
        ),
        200,
    )
    assert {m["analysis"]["model_version"] for m in detail["messages"]} == {done.model_version}
    assert detail["messages"][0]["analysis"]["encoder_version"] == "stub-encoder-v2"

    again = await replay(sessions, StubModels("v2"), settings, since=since, tenant_id=tenant_id)
    assert again.written == 0
    assert again.unchanged == 3


async def test_the_app_enriches_in_process_and_reports_it(
    backend: Backend, tenant: TenantCtx, analyzer: Analyzer
) -> None:
    """What `relaydesk up` runs without Kafka (the Serve ingress, or uvicorn): the app's
    lifespan starts the subscriber on its bus, here with the real models."""
    from api.app import create_app
    from models.local import LocalModels

    # No catch-up, and earlier tests' events marked sent: the session's database holds
    # every earlier test's messages, which are not this test's business.
    await OutboxRelay(backend.runtime.sessions, InMemoryEventBus()).drain()
    settings = backend.settings.model_copy(
        update={"pipeline": PipelineSettings(catch_up_on_start=False)}
    )
    runtime = Runtime.build(settings, models=LocalModels(analyzer))
    app = create_app(runtime=runtime, enrichment="all")
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://relaydesk.test") as client,
        ):
            local = app.state.pipeline.local
            assert isinstance(local, EmbeddedPipeline)
            body = {
                "channel_id": tenant.channel_id,
                "customer": {"external_id": "lifespan-ai"},
                "text": "I want a refund for the broken blender, order 5521",
                "provider_message_id": uuid.uuid4().hex,
            }
            posted = expect(
                await client.post("/v1/inbound", json=body, headers=tenant.key_headers), 201
            )
            url = f"/v1/conversations/{posted['conversation_id']}"
            analysis = None
            for _ in range(100):
                detail = expect(await client.get(url, headers=tenant.agent.headers), 200)
                analysis = detail["messages"][0]["analysis"]
                if analysis is not None:
                    break
                await asyncio.sleep(0.1)
            summary = expect(
                await client.get("/v1/ops/pipeline", headers=tenant.admin.headers), 200
            )
            forbidden = await client.get("/v1/ops/pipeline", headers=tenant.viewer.headers)
            metrics = (await client.get("/metrics")).text
    finally:
        await runtime.close()
    assert analysis is not None, "not analyzed within 10 s"
    assert analysis["intent"] == "return_refund"
    assert analysis["language"] == "en"
    assert summary["mode"] == "embedded"
    assert summary["consumers"][0]["name"] == "embedded"
    assert summary["messages"] >= 1
    assert summary["lag"]["partitions"] == []
    assert summary["latency_s"]["p50"] is not None
    assert forbidden.status_code == 403
    assert "relaydesk_pipeline_messages_total" in metrics
    assert "relaydesk_pipeline_end_to_end_latency_seconds_bucket" in metrics
