"""`Encoder`: the one shared text encoder, batching every caller's texts into one pass."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from models.encoder import Encoder, Kind, load_encoder
from serve.options import AppArgs

MAX_BATCH_TEXTS = 64
# Long enough for concurrent callers to meet in a batch, short next to one e5 pass (≥ 5 ms).
BATCH_WAIT_S = 0.004
# Serve forms the next batch while one runs; with one pass at a time the model sat idle a
# third of the time between passes (handing results back, starting the next). Two passes
# at once share the session (ONNX Runtime runs them side by side, each on its own intra-op
# threads): the second core works whenever the rest of the app leaves it free.
CONCURRENT_PASSES = 2


def _texts_in(items: list[tuple[list[str], Kind]]) -> int:
    return sum(len(texts) for texts, _ in items)


@serve.deployment(name="Encoder", max_ongoing_requests=128)
class EncoderDeployment:
    def __init__(self, args: AppArgs) -> None:
        settings = args.settings()
        # More intra-op threads than reserved CPUs only fight the other replicas (the
        # 1-vs-2-thread figures are in docs/benchmarks.md).
        self.encoder: Encoder = load_encoder(
            settings.ai.encoder, settings.models_dir, settings.ai.encoder_threads
        )
        # What the replica did, for benchmarks and for tests of "one pass per message".
        self.counts = {"requests": 0, "texts": 0, "passes": 0}

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    def info(self) -> dict[str, Any]:
        enc = self.encoder
        return {
            "name": enc.name,
            "version": enc.version,
            "dim": enc.dim,
            "max_tokens": enc.max_tokens,
        }

    async def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        self.counts["requests"] += 1
        # A batch holds at most MAX_BATCH_TEXTS texts: a long article is several items.
        parts = [texts[i : i + MAX_BATCH_TEXTS] for i in range(0, len(texts), MAX_BATCH_TEXTS)]
        vectors = await asyncio.gather(*(self._batched((part, kind)) for part in parts))
        return np.concatenate(vectors)

    @serve.batch(
        max_batch_size=MAX_BATCH_TEXTS,
        batch_wait_timeout_s=BATCH_WAIT_S,
        max_concurrent_batches=CONCURRENT_PASSES,
        batch_size_fn=_texts_in,
    )
    async def _batched(self, items: list[tuple[list[str], Kind]]) -> list[np.ndarray]:
        # A worker thread does the math so that the replica keeps accepting requests, which
        # then form the next batch. Counted here, on the event loop: passes run in parallel.
        vectors, passes = await asyncio.to_thread(self._encode_items, items)
        self.counts["passes"] += passes
        self.counts["texts"] += _texts_in(items)
        return vectors

    def _encode_items(self, items: list[tuple[list[str], Kind]]) -> tuple[list[np.ndarray], int]:
        out: list[np.ndarray | None] = [None] * len(items)
        kinds = {k for _, k in items}
        for kind in kinds:
            picked = [i for i, (_, k) in enumerate(items) if k == kind]
            flat = [t for i in picked for t in items[i][0]]
            vectors = self.encoder.encode(flat, kind)
            start = 0
            for i in picked:
                n = len(items[i][0])
                out[i] = vectors[start : start + n]
                start += n
        return [v for v in out if v is not None], len(kinds)
