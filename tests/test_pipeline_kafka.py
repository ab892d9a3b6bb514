"""The enrichment consumer on the real Kafka broker and PostgreSQL (in this process; the
Ray actor pool is in test_pipeline_ray.py): poison payloads and failing messages go to the
dead-letter topic while later messages flow, a relay that crashes between publish and mark
has no duplicate effect, one conversation is applied in order, a restarted consumer resumes
from the committed offsets, dead letters are listed and retried, and lag reads zero when
everything is committed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from core.domain.analyses import MessageAnalysis
from core.events.bus import BusMessage, InMemoryEventBus
from core.events.relay import OutboxRelay
from core.events.store import EventRecord, OutboxRecord
from core.settings import Settings
from pipelines.consumer import EnrichmentConsumer
from pipelines.dead_letter import read_dead_letters, retry_dead_letters
from pipelines.ops import PipelineMonitor, consumer_lag
from pipelines.topics import Topics
from tests.conftest import PostgresDatabase, require_env, serving
from tests.factories import Backend, TenantCtx, inbound, make_tenant
from tests.pipeline_doubles import FAIL, StubModels
from tests.test_kafka import _delete_topics

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(180)]

FAST = {
    "session_timeout_ms": 6000,
    "batch_max_wait_ms": 20,
    "retry_backoff_ms": 10,
    "max_attempts": 2,
    "batch_max_messages": 8,
}


def kafka_settings(postgres_url: str, postgres: PostgresDatabase, prefix: str) -> Settings:
    return postgres.settings(
        postgres_url,
        kafka_bootstrap_servers=require_env("RELAYDESK_TEST_KAFKA_BOOTSTRAP"),
        kafka={"topic_prefix": prefix, "partitions": 3},
        pipeline=FAST,
    )


@dataclass
class KafkaEnv:
    backend: Backend
    tenant: TenantCtx
    topics: Topics

    @property
    def settings(self) -> Settings:
        return self.backend.settings


@pytest_asyncio.fixture(loop_scope="session")
async def env(postgres: PostgresDatabase) -> AsyncIterator[KafkaEnv]:
    """Topics and a consumer group of this test only, on the session's PostgreSQL."""
    prefix = f"relaydesk-test-{uuid.uuid4().hex[:12]}."
    settings = kafka_settings(await postgres.url(), postgres, prefix)
    try:
        async with serving("postgres+kafka", settings) as backend:
            # Earlier tests' unpublished events are theirs: mark them sent elsewhere.
            await OutboxRelay(backend.runtime.sessions, InMemoryEventBus()).drain()
            tenant = await make_tenant(backend)
            yield KafkaEnv(backend, tenant, Topics.of(settings))
    finally:
        await _delete_topics(settings.kafka.bootstrap_servers, prefix)


@asynccontextmanager
async def consuming(
    env: KafkaEnv, models: Any = None, name: str = "c1"
) -> AsyncIterator[EnrichmentConsumer]:
    consumer = EnrichmentConsumer(env.settings, models or StubModels(), name=name)
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 30)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 30, every_s: float = 0.2
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(every_s)
    pytest.fail(f"not true within {timeout_s} s")


async def scalar(env: KafkaEnv, query: Any) -> int:
    async with env.backend.runtime.sessions() as session:
        return int(await session.scalar(query) or 0)


def analyses_of(env: KafkaEnv) -> Any:
    return (
        select(func.count())
        .select_from(MessageAnalysis)
        .where(MessageAnalysis.tenant_id == uuid.UUID(env.tenant.id))
    )


def analyzed_events(env: KafkaEnv) -> Any:
    return (
        select(func.count())
        .select_from(EventRecord)
        .where(
            EventRecord.tenant_id == uuid.UUID(env.tenant.id),
            EventRecord.event_type == "message.analyzed",
        )
    )


async def post(env: KafkaEnv, texts: list[str], external_id: str = "k1") -> list[dict[str, Any]]:
    posted = [await inbound(env.tenant, external_id=external_id, text=t) for t in texts]
    await env.backend.runtime.relay.drain()
    return posted


async def produce_raw(env: KafkaEnv, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=env.settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(
                env.topics.received, value, key=b"poison", headers=[("origin", b"test-suite")]
            )
    finally:
        await producer.stop()


async def test_poison_and_failing_messages_go_to_dead_letter_while_later_ones_flow(
    env: KafkaEnv,
) -> None:
    bad_message = json.dumps(
        {
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "event_type": "message.received",
            "tenant_id": env.tenant.id,
            "aggregate_type": "conversation",
            "aggregate_id": str(uuid.uuid4()),
            "aggregate_version": 1,
            "data": {"text": "no ids at all"},
        }
    ).encode()
    async with consuming(env) as consumer:
        await produce_raw(env, [b"\xff\xfe\x00 definitely not json", bad_message])
        await post(env, ["Where is my order?", f"{FAIL} this one breaks the model", "hello"])
        await eventually(lambda: _equals(scalar(env, analyses_of(env)), 2))
        await eventually(lambda: _at_least(_dead_count(env), 3))
        stats = consumer.stats.snapshot()
    letters = {e.letter.reason: e.letter for e in await read_dead_letters(env.settings)}
    assert set(letters) == {"invalid_json", "invalid_message", "enrichment_failed"}
    assert letters["invalid_json"].payload_b64  # not UTF-8: kept as base64
    assert letters["invalid_json"].headers == {"origin": "test-suite"}
    assert letters["invalid_json"].key == "poison"
    assert "message_id" in letters["invalid_message"].error
    failed = letters["enrichment_failed"]
    assert "could not read" in failed.error
    assert failed.attempts == 2
    assert FAIL in (failed.payload or "")
    assert failed.headers["event_type"] == "message.received"
    assert stats["dead_letters"] == 3
    assert stats["messages"] == 2

    # retry: with models that read it now, the message is analyzed; retrying again is a no-op
    async with consuming(env, StubModels(fails=False), name="c2"):
        result = await retry_dead_letters(env.settings)
        assert result.republished == 1
        assert result.left_alone == 2  # bad payloads are not retried by default
        await eventually(lambda: _equals(scalar(env, analyses_of(env)), 3))
    again = await retry_dead_letters(env.settings)
    assert again.republished == 0
    assert again.already_analyzed == 1


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _at_least(value: Awaitable[int], expected: int) -> bool:
    return await value >= expected


async def _dead_count(env: KafkaEnv) -> int:
    return len(await read_dead_letters(env.settings, timeout_s=3))


async def test_relay_crash_between_publish_and_mark_has_no_duplicate_effect(
    env: KafkaEnv,
) -> None:
    runtime = env.backend.runtime
    texts = [f"Where is my order {n}?" for n in range(8)]
    for text in texts:
        await inbound(env.tenant, external_id="dup", text=text)
    # The relay published these rows, then died before marking them: they stay unsent.
    async with runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(OutboxRecord)
                .where(OutboxRecord.published_at.is_(None))
                .order_by(OutboxRecord.id)
            )
        ).all()
    await runtime.bus.publish_batch(
        [BusMessage(r.topic, r.key, r.payload, r.headers) for r in rows]
    )
    # On restart it publishes them again, and marks them.
    assert await runtime.relay.drain() == len(rows)
    async with consuming(env) as consumer:
        await eventually(lambda: _equals(scalar(env, analyzed_events(env)), len(texts)))
        await eventually(lambda: _at_least(_records(consumer), 2 * len(texts)))
        await asyncio.sleep(0.5)
        stats = consumer.stats.snapshot()
    assert await scalar(env, analyses_of(env)) == len(texts)
    assert await scalar(env, analyzed_events(env)) == len(texts)
    assert stats["messages"] == len(texts)
    assert stats["duplicates"] == len(texts)


async def _records(consumer: EnrichmentConsumer) -> int:
    return int(consumer.stats.snapshot()["records"])


async def test_one_conversation_is_applied_in_order(env: KafkaEnv) -> None:
    texts = [f"Where is my order {n}? hello" for n in range(25)]
    posted = await post(env, texts, external_id="ordered")
    conversation_id = uuid.UUID(posted[0]["conversation_id"])
    async with consuming(env, StubModels(delay_s=0.01)):
        await eventually(lambda: _equals(scalar(env, analyzed_events(env)), len(texts)))
    async with env.backend.runtime.sessions() as session:
        order = (
            await session.scalars(
                select(EventRecord.payload)
                .where(
                    EventRecord.aggregate_id == conversation_id,
                    EventRecord.event_type == "message.analyzed",
                )
                .order_by(EventRecord.aggregate_version)
            )
        ).all()
    assert [p["message_id"] for p in order] == [p["message"]["id"] for p in posted]


async def test_a_restarted_consumer_resumes_from_the_committed_offsets(env: KafkaEnv) -> None:
    await post(env, [f"hello {n}" for n in range(6)], external_id="first")
    async with consuming(env, name="before") as before:
        await eventually(lambda: _equals(scalar(env, analyses_of(env)), 6))
    assert before.stats.snapshot()["records"] == 6
    # Stopped: these wait in Kafka.
    await post(env, [f"hello again {n}" for n in range(4)], external_id="second")
    lag = await consumer_lag(env.settings)
    assert sum(p.lag for p in lag) == 4
    assert [p.committed for p in lag if p.committed is not None] == [6]  # the first thread
    models = StubModels()
    async with consuming(env, models, name="after") as after:
        await eventually(lambda: _equals(scalar(env, analyses_of(env)), 10))
        monitor = PipelineMonitor(env.settings)
        monitor.local = after
        await eventually(lambda: _lag_is_zero(monitor))
        summary = await monitor.summary()
    # Only the new records were read: nothing before the committed offsets came back.
    assert after.stats.snapshot()["records"] == 4
    assert sorted(t for call in models.calls for t in call) == [
        f"hello again {n}" for n in range(4)
    ]
    assert summary["mode"] == "kafka"
    assert summary["lag"]["total"] == 0
    assert len(summary["lag"]["partitions"]) == 3
    assert summary["messages"] == 4
    assert summary["latency_s"]["p50"] is not None
    assert summary["consumers"][0]["name"] == "after"
    exposition = (await monitor.exposition()).decode()
    assert 'relaydesk_pipeline_consumer_lag{partition="0"' in exposition
    assert "relaydesk_pipeline_end_to_end_latency_seconds_bucket" in exposition


async def _lag_is_zero(monitor: PipelineMonitor) -> bool:
    monitor._lag = None  # no cache: read the broker now
    lag = await monitor.lag()
    return isinstance(lag, list) and sum(p.lag for p in lag) == 0
