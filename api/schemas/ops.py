"""Schemas of the operations endpoints."""

from __future__ import annotations

from pydantic import Field

from api.schemas.common import Output


class PartitionLagPublic(Output):
    topic: str
    partition: int
    high_watermark: int
    committed: int | None = Field(description="None: the group has not committed here yet.")
    lag: int


class LagPublic(Output):
    total: int | None
    partitions: list[PartitionLagPublic]
    error: str | None = Field(description="Why the lag could not be read from Kafka.")


class ConsumerPublic(Output):
    name: str
    alive: bool
    partitions: list[str] = Field(default_factory=list)
    restarts: int = 0
    error: str | None = None


class Quantiles(Output):
    p50: float | None
    p95: float | None
    p99: float | None


class PipelineSummary(Output):
    mode: str = Field(description="kafka, embedded (in-process bus) or off")
    topic: str
    consumer_group: str
    consumers: list[ConsumerPublic]
    lag: LagPublic
    records: int = Field(description="Records taken off the topic since the consumers started")
    messages: int = Field(description="Messages analyzed (a new analysis row) since start")
    duplicates: int = Field(description="Redelivered or already analyzed: no effect")
    skipped: int
    dead_letters: int
    batches: int
    retries: int
    throughput_per_s: float = Field(description="Messages analyzed per second, last minute")
    mean_batch_size: float | None
    latency_s: Quantiles = Field(description="Message stored → analysis committed")
    kafka_latency_s: Quantiles = Field(description="Kafka timestamp → analysis committed")
