"""The consumer actor pool on a real local Ray, with the real Kafka broker and PostgreSQL:
an inbound message posted to the API comes back analyzed by the Serve `Enricher` within
10 s; a consumer actor killed in the middle of a batch loses nothing and applies nothing
twice; scaling 2 → 1 → 2 actors rebalances without loss; a restarted pool resumes from the
committed offsets."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.domain.analyses import ConversationInsight
from models.analyzer import Analyzer
from pipelines.actors import ServeEnricher, start_pool, stop_pool
from pipelines.ops import PipelineMonitor
from tests.factories import expect, inbound
from tests.pipeline_doubles import StubModelsFactory, read_calls
from tests.test_pipeline_kafka import (
    KafkaEnv,
    analyses_of,
    analyzed_events,
    env,  # noqa: F401 - the fixture
    eventually,
    scalar,
)

ray = pytest.importorskip("ray")  # a hard dependency; this only names the import once

# Ray, the actors and Kafka group joins take tens of seconds on two shared cores.
pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(600)]


@pytest.fixture
def pool_factory(ray_session: None) -> Iterator[Any]:
    """Start pools; whatever a test started is stopped after it."""
    started: list[Any] = []

    def start(kafka: KafkaEnv, models: Any, consumers: int = 2) -> Any:
        supervisor = start_pool(kafka.settings, models, consumers)
        started.append(supervisor)
        return supervisor

    yield start
    for supervisor in started:
        with contextlib.suppress(Exception):  # already stopped by the test
            stop_pool(supervisor)


async def status(supervisor: Any) -> dict[str, Any]:
    result: dict[str, Any] = await supervisor.refresh.remote()
    return result


async def _count_is(kafka: KafkaEnv, query: Any, expected: int) -> bool:
    return await scalar(kafka, query) == expected


async def post_many(kafka: KafkaEnv, n: int, threads: int, tag: str) -> None:
    for i in range(n):
        await inbound(kafka.tenant, external_id=f"{tag}-{i % threads}", text=f"hello {tag} {i}")
    await kafka.backend.runtime.relay.drain()


async def test_inbound_message_is_analyzed_by_serve_and_visible_within_10s(
    env: KafkaEnv,  # noqa: F811
    pool_factory: Any,
    tmp_path: Path,
    models_cache: Path,
    analyzer: Analyzer,
) -> None:
    from ray import serve

    from serve.deployments.encoder import EncoderDeployment
    from serve.deployments.enricher import EnricherDeployment
    from serve.options import AppArgs

    # The enrichment half of the Serve app (Encoder + Enricher), on the built models.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_cache, target_is_directory=True)
    args = AppArgs(data_dir=str(data_dir))
    encoder = EncoderDeployment.options(ray_actor_options={"num_cpus": 1.0}).bind(args)  # type: ignore[attr-defined]
    enricher = EnricherDeployment.options(ray_actor_options={"num_cpus": 0.3}).bind(encoder, args)  # type: ignore[attr-defined]
    # Handles only: no HTTP proxy (and no port taken).
    serve.start(proxy_location="Disabled")
    serve.run(enricher, name="relaydesk", route_prefix=None)
    try:
        supervisor = pool_factory(env, ServeEnricher())
        runtime = env.backend.runtime
        runtime.relay.start()  # as in `relaydesk up`: woken by each commit
        try:
            started = time.monotonic()
            posted = await inbound(
                env.tenant,
                external_id="serve",
                text="¿Dónde está mi pedido 4411? Lo pedí hace dos semanas",
            )
            url = f"/v1/conversations/{posted['conversation_id']}"
            analysis = None
            while time.monotonic() - started < 10 and analysis is None:
                detail = expect(
                    await env.tenant.client.get(url, headers=env.tenant.agent.headers), 200
                )
                analysis = detail["messages"][0]["analysis"]
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started
        finally:
            await runtime.relay.stop()
        assert analysis is not None, f"not analyzed within 10 s ({elapsed:.1f} s)"
        assert analysis["language"] == "es"
        assert analysis["intent"] == "order_status"
        assert analysis["encoder_version"] == analyzer.encoder_version
        assert any(e["type"] == "order_id" for e in analysis["entities"])
        assert detail["ai"]["language"] == "es"
        pool = await status(supervisor)
        assert [c["alive"] for c in pool["consumers"]] == [True, True]
        assert pool["stats"]["messages"] == 1
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]


async def test_killing_a_consumer_mid_batch_loses_nothing_and_applies_nothing_twice(
    env: KafkaEnv,  # noqa: F811
    pool_factory: Any,
    tmp_path: Path,
) -> None:
    calls = tmp_path / "calls.jsonl"
    supervisor = pool_factory(env, StubModelsFactory(delay_s=0.4, calls_file=str(calls)))
    total = 60
    await post_many(env, total, threads=12, tag="kill")
    # Wait for a consumer to be inside a batch (the models were called, nothing written)...
    await eventually(lambda: _called(calls), timeout_s=60, every_s=0.05)
    victim_pid = read_calls(calls)[0]["pid"]
    pool = await status(supervisor)
    victim = next(c for c in pool["consumers"] if c["pid"] == victim_pid)
    actors = await supervisor.actors.remote()
    # ... and kill it there.
    ray.kill(actors[victim["name"]])

    await eventually(lambda: _count_is(env, analyses_of(env), total), timeout_s=120)
    await asyncio.sleep(2)  # anything applied twice would show now
    assert await scalar(env, analyses_of(env)) == total
    assert await scalar(env, analyzed_events(env)) == total
    async with env.backend.runtime.sessions() as session:
        folded = await session.scalar(
            select(func.sum(ConversationInsight.analyzed_messages)).where(
                ConversationInsight.tenant_id == uuid.UUID(env.tenant.id)
            )
        )
    assert folded == total
    pool = await status(supervisor)
    replaced = next(c for c in pool["consumers"] if c["slot"] == victim["slot"])
    assert replaced["restarts"] == 1
    assert replaced["name"] != victim["name"]
    assert all(c["alive"] for c in pool["consumers"])


async def test_scaling_two_to_one_and_back_rebalances_without_loss(
    env: KafkaEnv,  # noqa: F811
    pool_factory: Any,
) -> None:
    supervisor = pool_factory(env, StubModelsFactory())
    await post_many(env, 12, threads=6, tag="two")
    await eventually(lambda: _count_is(env, analyses_of(env), 12), timeout_s=60)

    assert await supervisor.scale.remote(1) == 1
    await post_many(env, 12, threads=6, tag="one")
    await eventually(lambda: _count_is(env, analyses_of(env), 24), timeout_s=60)
    pool = await status(supervisor)
    assert len(pool["consumers"]) == 1
    assert len(pool["consumers"][0]["partitions"]) == 3  # it took every partition

    assert await supervisor.scale.remote(2) == 2
    await post_many(env, 12, threads=6, tag="back")
    await eventually(lambda: _count_is(env, analyses_of(env), 36), timeout_s=60)
    await eventually(lambda: _partitions_split(supervisor), timeout_s=30)
    assert await scalar(env, analyzed_events(env)) == 36
    # What /v1/ops/pipeline shows from a process on the pool's Ray: the actors, every
    # message (the retired actor's too) and no lag.
    monitor = PipelineMonitor(env.settings)
    await eventually(lambda: _summary_settled(monitor, 36), timeout_s=30)
    summary = await monitor.summary()
    assert summary["mode"] == "kafka"
    assert sorted(c["slot"] for c in summary["consumers"]) == [0, 1]
    assert summary["dead_letters"] == 0


async def _summary_settled(monitor: PipelineMonitor, messages: int) -> bool:
    monitor._lag = None  # read the broker now
    summary = await monitor.summary()
    return bool(summary["messages"] == messages and summary["lag"]["total"] == 0)


async def _called(calls: Path) -> bool:
    return bool(read_calls(calls))


async def _partitions_split(supervisor: Any) -> bool:
    pool = await status(supervisor)
    owned = [len(c["partitions"]) for c in pool["consumers"]]
    return len(owned) == 2 and sum(owned) == 3 and min(owned) >= 1


async def test_a_restarted_pool_resumes_from_the_committed_offsets(
    env: KafkaEnv,  # noqa: F811
    pool_factory: Any,
) -> None:
    first = pool_factory(env, StubModelsFactory(), consumers=2)
    await post_many(env, 8, threads=4, tag="before")
    await eventually(lambda: _count_is(env, analyses_of(env), 8), timeout_s=60)
    stop_pool(first)

    await post_many(env, 5, threads=5, tag="while-down")
    second = pool_factory(env, StubModelsFactory(), consumers=2)
    await eventually(lambda: _count_is(env, analyses_of(env), 13), timeout_s=60)
    pool = await status(second)
    assert pool["stats"]["records"] == 5  # nothing before the committed offsets came back
    assert pool["stats"]["messages"] == 5
    assert await scalar(env, analyzed_events(env)) == 13
