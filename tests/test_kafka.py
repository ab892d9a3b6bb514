"""The outbox relay on the real Kafka broker: publish, read back, mark published."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select

from core.events.bus import KafkaEventBus
from core.events.store import OutboxRecord
from tests.conftest import PostgresDatabase, require_env, serving
from tests.factories import Backend, expect, inbound, make_tenant

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kafka_backend(postgres: PostgresDatabase) -> AsyncIterator[Backend]:
    bootstrap = require_env("RELAYDESK_TEST_KAFKA_BOOTSTRAP")
    # Topics of this run only: earlier runs' messages cannot satisfy the assertions.
    prefix = f"relaydesk-test-{uuid.uuid4().hex[:12]}."
    settings = postgres.settings(
        await postgres.url(), kafka_bootstrap_servers=bootstrap, kafka={"topic_prefix": prefix}
    )
    try:
        async with serving("postgres+kafka", settings) as ready:
            assert isinstance(ready.runtime.bus, KafkaEventBus)
            yield ready
    finally:
        await _delete_topics(bootstrap, prefix)


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    """Each run makes its own topics; leave the developer's broker as it was."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


async def test_readyz_reports_kafka(kafka_backend: Backend) -> None:
    body = expect(await kafka_backend.client.get("/readyz"), 200)
    assert body["checks"] == {"database": {"status": "up"}, "kafka": {"status": "up"}}


async def _read_until(topic: str, wanted: str, timeout_s: float = 30) -> Any:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=require_env("RELAYDESK_TEST_KAFKA_BOOTSTRAP"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    value = json.loads(record.value)
                    if value["data"].get("message_id") == wanted:
                        return record, value
    finally:
        await consumer.stop()
    pytest.fail(f"message {wanted} did not reach {topic} within {timeout_s} s")


async def test_relay_publishes_message_received_to_kafka(kafka_backend: Backend) -> None:
    runtime = kafka_backend.runtime
    t = await make_tenant(kafka_backend)
    received = await inbound(t, external_id="kafka", text="Is my order shipped?")
    published = await runtime.relay.drain()
    assert published >= 3  # customer.created, conversation.opened, message.received (at least)
    topic = runtime.settings.kafka.topic_prefix + "messages.received"
    record, envelope = await _read_until(topic, received["message"]["id"])
    assert record.key.decode() == str(received["conversation_id"])
    assert dict(record.headers)["event_type"] == b"message.received"
    assert envelope["schema_version"] == 1
    assert envelope["event_type"] == "message.received"
    assert envelope["tenant_id"] == t.id
    assert envelope["aggregate_id"] == str(received["conversation_id"])
    assert envelope["data"]["message_id"] == received["message"]["id"]
    assert envelope["data"]["text"] == "Is my order shipped?"
    async with runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(OutboxRecord).where(OutboxRecord.tenant_id == uuid.UUID(t.id))
            )
        ).all()
    assert {r.event_type for r in rows} >= {
        "customer.created",
        "conversation.opened",
        "message.received",
    }
    assert all(r.published_at is not None and r.attempts == 1 for r in rows)
    assert await runtime.relay.drain() == 0
