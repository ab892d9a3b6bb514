"""What a consumer did: counters, batch sizes, latencies and recent throughput.

Kept as plain numbers so a snapshot crosses Ray as a small dict, and snapshots of several
consumers merge by adding (the supervisor and `/v1/ops/pipeline` do that)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Seconds: message created (or broker timestamp) → analysis committed.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
COUNTERS = ("records", "messages", "duplicates", "skipped", "dead_letters", "batches", "retries")
THROUGHPUT_WINDOW_S = 60


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # one per bound, then +Inf
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """Estimated like Prometheus' histogram_quantile: linear within the bucket."""
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        lower = 0.0
        for i, n in enumerate(self.counts):
            upper = self.bounds[i] if i < len(self.bounds) else self.bounds[-1]
            if n and seen + n >= rank:
                if i == len(self.bounds):
                    return upper
                return lower + (upper - lower) * (rank - seen) / n
            seen += n
            lower = upper
        return self.bounds[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.total}

    @classmethod
    def from_dicts(cls, bounds: tuple[float, ...], parts: list[dict[str, Any]]) -> Histogram:
        merged = cls(bounds)
        for part in parts:
            if tuple(part["bounds"]) != bounds:
                continue
            merged.counts = [a + b for a, b in zip(merged.counts, part["counts"], strict=True)]
            merged.total += part["sum"]
        merged.count = sum(merged.counts)
        return merged


class PipelineStats:
    """One consumer's figures since it started."""

    def __init__(self) -> None:
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)  # message created → committed
        self.kafka_latency = Histogram(LATENCY_BUCKETS)  # broker timestamp → committed
        self.started = time.time()
        self._recent: deque[tuple[int, int]] = deque()  # (second, messages)

    def add(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def record_batch(
        self, size: int, written: int, latencies: list[float], kafka_latencies: list[float]
    ) -> None:
        self.counters["batches"] += 1
        self.counters["records"] += size
        self.counters["messages"] += written
        self.batch_size.observe(size)
        for value in latencies:
            self.latency.observe(value)
        for value in kafka_latencies:
            self.kafka_latency.observe(value)
        now = int(time.time())
        if self._recent and self._recent[-1][0] == now:
            self._recent[-1] = (now, self._recent[-1][1] + written)
        else:
            self._recent.append((now, written))
        while self._recent and self._recent[0][0] <= now - THROUGHPUT_WINDOW_S:
            self._recent.popleft()

    def throughput(self) -> float:
        """Messages per second over the last minute (or since start, if sooner)."""
        now = time.time()
        span = min(THROUGHPUT_WINDOW_S, max(now - self.started, 1.0))
        return sum(n for second, n in self._recent if second > now - THROUGHPUT_WINDOW_S) / span

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.counters,
            "throughput_per_s": round(self.throughput(), 3),
            "batch_size": self.batch_size.to_dict(),
            "latency_s": self.latency.to_dict(),
            "kafka_latency_s": self.kafka_latency.to_dict(),
            "started_at": self.started,
        }


def merge_snapshots(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several consumers' snapshots as one (counters and rates add up)."""
    merged: dict[str, Any] = {name: sum(int(p.get(name, 0)) for p in parts) for name in COUNTERS}
    merged["throughput_per_s"] = round(sum(float(p.get("throughput_per_s", 0)) for p in parts), 3)
    for key, bounds in (
        ("batch_size", BATCH_BUCKETS),
        ("latency_s", LATENCY_BUCKETS),
        ("kafka_latency_s", LATENCY_BUCKETS),
    ):
        merged[key] = Histogram.from_dicts(bounds, [p[key] for p in parts if key in p]).to_dict()
    return merged


def summarize(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Counters with the quantiles a person reads (p50/p95/p99, mean batch size)."""
    latency = Histogram.from_dicts(LATENCY_BUCKETS, [snapshot["latency_s"]])
    kafka = Histogram.from_dicts(LATENCY_BUCKETS, [snapshot["kafka_latency_s"]])
    batches = Histogram.from_dicts(BATCH_BUCKETS, [snapshot["batch_size"]])
    return {
        **{name: snapshot.get(name, 0) for name in COUNTERS},
        "throughput_per_s": snapshot.get("throughput_per_s", 0.0),
        "mean_batch_size": round(batches.total / batches.count, 2) if batches.count else None,
        "latency_s": {f"p{int(q * 100)}": _round(latency.quantile(q)) for q in (0.5, 0.95, 0.99)},
        "kafka_latency_s": {
            f"p{int(q * 100)}": _round(kafka.quantile(q)) for q in (0.5, 0.95, 0.99)
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
