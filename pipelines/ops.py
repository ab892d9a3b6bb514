"""What an operator sees of the pipeline: consumer lag per partition (the high watermark
minus the group's committed offset, read from Kafka), the consumers, throughput, batch
sizes and latency histograms, as a summary (`GET /v1/ops/pipeline`, `relaydesk pipeline
status`) and as Prometheus metrics (`/metrics`).

The figures come from wherever the consumers run: the in-process pipeline of this process,
and the Ray actor pool when this process is connected to the Ray cluster running it (the
Serve ingress is). Lag needs neither: it is read from the broker."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from core.settings import Settings
from pipelines.stats import (
    BATCH_BUCKETS,
    COUNTERS,
    LATENCY_BUCKETS,
    Histogram,
    merge_snapshots,
    summarize,
)
from pipelines.topics import Topics, partitions_of

logger = logging.getLogger(__name__)

LAG_CACHE_S = 2.0


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    high_watermark: int
    committed: int | None  # None: the group never committed here (it starts at the oldest)
    lag: int


async def consumer_lag(settings: Settings) -> list[PartitionLag]:
    """Lag of the enrichment group on `messages.received`, per partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    topics = Topics.of(settings)
    bootstrap = settings.kafka.bootstrap_servers
    partitions = await partitions_of(bootstrap, topics.received)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(topics.group)
        tps = [TopicPartition(topics.received, p) for p in partitions]
        await consumer.start()
        ends = await consumer.end_offsets(tps) if tps else {}
        starts = await consumer.beginning_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
        await admin.close()
    out = []
    for tp in tps:
        meta = committed.get(tp)
        offset = meta.offset if meta is not None and meta.offset >= 0 else None
        base = offset if offset is not None else starts[tp]
        out.append(PartitionLag(tp.topic, tp.partition, ends[tp], offset, max(ends[tp] - base, 0)))
    return out


class StatsSource(Protocol):
    """An in-process pipeline (embedded subscriber or Kafka consumer)."""

    name: str

    def status(self) -> dict[str, Any]: ...


class PipelineMonitor:
    """Gathers the pipeline's figures for one API process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.local: StatsSource | None = None
        self._lag: tuple[float, list[PartitionLag] | str] | None = None

    @property
    def mode(self) -> str:
        if not self.settings.pipeline.enabled:
            return "off"
        return "kafka" if self.settings.kafka.bootstrap_servers else "embedded"

    async def lag(self) -> list[PartitionLag] | str:
        """Per-partition lag (cached for a moment), or why it cannot be read."""
        if self._lag is not None and time.monotonic() - self._lag[0] < LAG_CACHE_S:
            return self._lag[1]
        try:
            found: list[PartitionLag] | str = await asyncio.wait_for(
                consumer_lag(self.settings), timeout=10
            )
        except Exception as exc:
            found = f"{type(exc).__name__}: {exc}"[:300]
        self._lag = (time.monotonic(), found)
        return found

    async def _pool(self) -> dict[str, Any] | None:
        # Only when this process is already on Ray (the Serve ingress, the CLI): importing
        # and connecting here would cost seconds on every request.
        if "ray" not in sys.modules:
            return None
        import ray

        if not ray.is_initialized():
            return None
        from pipelines.actors import find_pool

        pool = find_pool()
        if pool is None:
            return None
        try:
            status: dict[str, Any] = await asyncio.wait_for(pool.status.remote(), timeout=5)
        except Exception as exc:
            return {"consumers": [], "stats": None, "error": f"{type(exc).__name__}: {exc}"}
        return status

    async def snapshot(self) -> dict[str, Any]:
        """Raw figures: consumers, merged stats snapshot, lag."""
        consumers: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        if self.local is not None:
            local = self.local.status()
            consumers.append({k: v for k, v in local.items() if k != "stats"})
            parts.append(local["stats"])
        pool = await self._pool()
        if pool is not None:
            consumers.extend(pool.get("consumers", []))
            if pool.get("stats"):
                parts.append(pool["stats"])
        lag: list[PartitionLag] | str = []
        if self.mode == "kafka":
            lag = await self.lag()
        return {"consumers": consumers, "stats": merge_snapshots(parts), "lag": lag}

    async def summary(self) -> dict[str, Any]:
        """What `GET /v1/ops/pipeline` answers."""
        raw = await self.snapshot()
        lag = raw["lag"]
        partitions = [vars(p) for p in lag] if isinstance(lag, list) else []
        return {
            "mode": self.mode,
            "topic": Topics.of(self.settings).received,
            "consumer_group": Topics.of(self.settings).group,
            "consumers": raw["consumers"],
            "lag": {
                "total": sum(p["lag"] for p in partitions) if isinstance(lag, list) else None,
                "partitions": partitions,
                "error": lag if isinstance(lag, str) else None,
            },
            **summarize(raw["stats"]),
        }

    async def exposition(self) -> bytes:
        """Prometheus text for the pipeline's metrics (appended to `/metrics`)."""
        raw = await self.snapshot()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(raw))
        return generate_latest(registry)


class _Collector:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def collect(self) -> Iterator[Metric]:
        stats = self.raw["stats"]
        lag = GaugeMetricFamily(
            "relaydesk_pipeline_consumer_lag",
            "Messages not yet committed by the enrichment group, per partition",
            labels=["topic", "partition"],
        )
        for part in self.raw["lag"] if isinstance(self.raw["lag"], list) else []:
            lag.add_metric([part.topic, str(part.partition)], part.lag)
        yield lag
        for name in COUNTERS:
            yield CounterMetricFamily(
                f"relaydesk_pipeline_{name}", f"Pipeline {name.replace('_', ' ')}", stats[name]
            )
        yield GaugeMetricFamily(
            "relaydesk_pipeline_throughput_messages_per_second",
            "Messages analyzed per second over the last minute",
            stats["throughput_per_s"],
        )
        yield GaugeMetricFamily(
            "relaydesk_pipeline_consumers_alive",
            "Consumers running",
            sum(1 for c in self.raw["consumers"] if c.get("alive")),
        )
        yield _histogram(
            "relaydesk_pipeline_batch_size",
            "Records per micro-batch",
            BATCH_BUCKETS,
            stats["batch_size"],
        )
        yield _histogram(
            "relaydesk_pipeline_end_to_end_latency_seconds",
            "Message stored to its analysis committed",
            LATENCY_BUCKETS,
            stats["latency_s"],
        )
        yield _histogram(
            "relaydesk_pipeline_kafka_latency_seconds",
            "Broker timestamp of the message to its analysis committed",
            LATENCY_BUCKETS,
            stats["kafka_latency_s"],
        )


def _histogram(
    name: str, doc: str, bounds: tuple[float, ...], part: dict[str, Any]
) -> HistogramMetricFamily:
    h = Histogram.from_dicts(bounds, [part])
    cumulative, buckets = 0, []
    for bound, n in zip([*map(str, bounds), "+Inf"], h.counts, strict=True):
        cumulative += n
        buckets.append((bound, cumulative))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.total)
