"""`Enricher`: language, entities, intent, sentiment and urgency for a batch of messages,
with the one embedding per message computed by the shared `Encoder` deployment."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from models import entities as entity_model
from models import language as language_model
from models.analyzer import Analyzer
from models.service import Analysis, AnalyzeRequest
from serve.options import AppArgs

# Concurrent callers' messages are analyzed together: one prepare/finish hop to a worker
# thread and one Encoder request per batch instead of per call. A long request is cut in
# parts of this size; the wait is short next to one encoder pass (docs/benchmarks.md).
MAX_BATCH_MESSAGES = 64
BATCH_WAIT_S = 0.002


def _messages_in(items: list[list[AnalyzeRequest]]) -> int:
    return sum(len(requests) for requests in items)


@serve.deployment(name="Enricher", max_ongoing_requests=64)
class EnricherDeployment:
    def __init__(self, encoder: DeploymentHandle[Any], args: AppArgs) -> None:
        settings = args.settings()
        self._encoder = encoder
        # The local encoder only tokenizes (where a long text is cut) and embeds a tenant's
        # few-shot intent examples, once each; messages go through the Encoder deployment.
        # Models are built before deployment (`relaydesk up`, `relaydesk models build`).
        self.analyzer = Analyzer.load(settings.models_dir, settings.ai, build_if_missing=False)
        # spaCy and the language model load lazily: at start, not on the first messages.
        language_model.warm_up()
        entity_model.warm_up()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """`user_config` of serve/config.yaml, applied in place without a restart."""
        update = {k: config[k] for k in ("min_confidence",) if k in config}
        if update:
            self.analyzer.ai = self.analyzer.ai.model_copy(update=update)

    def versions(self) -> dict[str, str]:
        return self.analyzer.versions()

    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]:
        if not requests:
            return []
        parts = [
            requests[i : i + MAX_BATCH_MESSAGES]
            for i in range(0, len(requests), MAX_BATCH_MESSAGES)
        ]
        analyses = await asyncio.gather(*(self._batched(part) for part in parts))
        return [a for part in analyses for a in part]

    @serve.batch(
        max_batch_size=MAX_BATCH_MESSAGES,
        batch_wait_timeout_s=BATCH_WAIT_S,
        batch_size_fn=_messages_in,
    )
    async def _batched(self, items: list[list[AnalyzeRequest]]) -> list[list[Analysis]]:
        # Each message is analyzed on its own (its text, its tenant's taxonomy): merging
        # callers changes how many hops there are, not any answer.
        flat = [request for requests in items for request in requests]
        analyses = await self._analyze(flat)
        out: list[list[Analysis]] = []
        start = 0
        for requests in items:
            out.append(analyses[start : start + len(requests)])
            start += len(requests)
        return out

    async def _analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]:
        analyzer = self.analyzer
        prepared = await asyncio.to_thread(analyzer.prepare, requests)
        texts = analyzer.texts_to_encode(prepared)
        vectors: np.ndarray
        if texts:
            vectors = await self._encoder.encode.remote(texts, "query")
        else:
            vectors = np.zeros((0, analyzer.encoder.dim), dtype=np.float32)
        return await asyncio.to_thread(analyzer.finish, requests, prepared, vectors)
