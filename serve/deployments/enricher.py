"""`Enricher`: language, entities, intent, sentiment and urgency for a batch of messages,
with the one embedding per message computed by the shared `Encoder` deployment."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from models.analyzer import Analyzer
from models.service import Analysis, AnalyzeRequest
from serve.options import AppArgs


@serve.deployment(name="Enricher", max_ongoing_requests=64)
class EnricherDeployment:
    def __init__(self, encoder: DeploymentHandle[Any], args: AppArgs) -> None:
        settings = args.settings()
        self._encoder = encoder
        # The local encoder only tokenizes (where a long text is cut) and embeds a tenant's
        # few-shot intent examples, once each; messages go through the Encoder deployment.
        # Models are built before deployment (`relaydesk up`, `relaydesk models build`).
        self.analyzer = Analyzer.load(settings.models_dir, settings.ai, build_if_missing=False)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """`user_config` of serve/config.yaml, applied in place without a restart."""
        update = {k: config[k] for k in ("min_confidence",) if k in config}
        if update:
            self.analyzer.ai = self.analyzer.ai.model_copy(update=update)

    def versions(self) -> dict[str, str]:
        return self.analyzer.versions()

    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]:
        analyzer = self.analyzer
        prepared = await asyncio.to_thread(analyzer.prepare, requests)
        texts = analyzer.texts_to_encode(prepared)
        vectors: np.ndarray
        if texts:
            vectors = await self._encoder.encode.remote(texts, "query")
        else:
            vectors = np.zeros((0, analyzer.encoder.dim), dtype=np.float32)
        return await asyncio.to_thread(analyzer.finish, requests, prepared, vectors)
