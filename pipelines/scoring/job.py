"""The Ray Data job: texts in, score columns out, on a pool of scoring actors.

Each actor (`ScoreBatch`) loads the analyzer once with one encoder thread and one CPU, and
scores a batch in the analyzer's steps: prepare (clean, cut, language, entities), one
encoder pass over the batch, finish (the heads). N actors on N cores run N one-thread
encoder passes side by side, which is what a small machine does best (one pass does not
keep two threads busy: see docs/benchmarks.md)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from core.settings import Settings
from models.service import AnalyzeRequest
from pipelines.scoring.columns import ROW, score_columns, score_schema
from pipelines.scoring.models import ModelChoice, load_analyzer

logger = logging.getLogger(__name__)

TEXT = "text"
CHANNEL = "channel"
Progress = Callable[[int], object]
BATCHES_PER_BLOCK = 4


class ScoreBatch:
    """A scoring actor: the analyzer, loaded once; `__call__` scores one Arrow batch of
    (`_row`, `text`, optional `channel`) into the score columns."""

    def __init__(self, choice: ModelChoice, threads: int = 1) -> None:
        from threadpoolctl import threadpool_limits

        # The heads' BLAS must not spread over the cores the other actors use.
        self._limits = threadpool_limits(limits=threads)
        self.analyzer = load_analyzer(choice, threads)
        self.tasks = choice.tasks
        self.versions = choice.versions
        found = self.analyzer.versions()
        self.other_versions = {
            "language": found.get("language", ""),
            "entities": found.get("entities", ""),
        }

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column(TEXT).to_pylist()
        channels: list[str | None] = [None] * len(texts)
        if CHANNEL in batch.column_names:
            channels = batch.column(CHANNEL).to_pylist()
        requests = [AnalyzeRequest(t, channel=c) for t, c in zip(texts, channels, strict=True)]
        analyzer = self.analyzer
        prepared = analyzer.prepare(requests)
        to_encode = analyzer.texts_to_encode(prepared)
        vectors = (
            analyzer.encoder.encode(to_encode, "query")
            if to_encode
            else np.zeros((0, analyzer.encoder.dim), dtype=np.float32)
        )
        analyses = analyzer.finish(requests, prepared, vectors)
        rows = batch.column(ROW).to_pylist()
        return score_columns(rows, analyses, self.tasks, self.versions, self.other_versions)


def _quiet_ray_data() -> None:
    # Ray Data logs each execution and that its bars are off; the command prints its own.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def ensure_ray(settings: Settings, address: str | None = None, cpus: int | None = None) -> None:
    """Join the Ray at `address` (or the settings'), or start a local one on loopback."""
    import ray

    from serve.runner import ray_env

    if ray.is_initialized():
        return
    ray_env()
    target = address or settings.ray.address
    if target:
        ray.init(address=target, logging_level=logging.WARNING)
        return
    prefixes = ("RELAYDESK_", "HF_", "MLFLOW_", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    ray.init(
        num_cpus=cpus or os.cpu_count() or 1,
        include_dashboard=False,
        logging_level=logging.WARNING,
        # the actors must see the same configuration as this process
        runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith(prefixes)}},
    )


def default_workers() -> int:
    """One actor per CPU Ray has (at least one)."""
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return max(1, int(resources.get("CPU", 1)))


def score_texts(
    texts: Sequence[str],
    choice: ModelChoice,
    *,
    channels: Sequence[str | None] | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    progress: Progress | None = None,
) -> pa.Table:
    """Score `texts` on `workers` actors (default: one per CPU), `batch_size` per encoder
    pass; returns the score columns with `_row` (the position in `texts`), in order.
    `progress(n)` is called as each scored batch of n rows comes back. Ray must be up."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller draws one bar for the whole job
    context.print_on_execution_start = False
    _quiet_ray_data()
    if not texts:
        return score_schema(choice.tasks).empty_table()
    # Blocks of a few batches: fewer Ray tasks than one per batch, and still enough blocks
    # for the actors to pull as they finish, so that the cores stay even to the end.
    workers = workers or default_workers()
    per_block = batch_size * max(
        1, min(BATCHES_PER_BLOCK, len(texts) // (batch_size * workers * 4))
    )
    blocks = []
    for start in range(0, len(texts), per_block):
        stop = min(start + per_block, len(texts))
        block: dict[str, Any] = {ROW: np.arange(start, stop), TEXT: list(texts[start:stop])}
        if channels is not None:
            block[CHANNEL] = list(channels[start:stop])
        blocks.append(pa.table(block))
    workers = min(workers, len(blocks))  # more actors than batches would idle
    started = time.perf_counter()
    dataset = ray.data.from_arrow(blocks).map_batches(
        ScoreBatch,
        fn_constructor_kwargs={"choice": choice},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    parts: list[pa.Table] = []
    for part in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        assert isinstance(part, pa.Table)
        parts.append(part)
        if progress is not None:
            progress(part.num_rows)
    logger.info("scored %d rows in %.1f s", len(texts), time.perf_counter() - started)
    scored = pa.concat_tables(parts).sort_by(ROW)
    if scored.num_rows != len(texts):
        raise RuntimeError(f"{len(texts)} rows sent, {scored.num_rows} scored")
    return scored
