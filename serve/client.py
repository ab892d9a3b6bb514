"""`ServeModels`: the model service port over Ray Serve deployment handles."""

from __future__ import annotations

import uuid
from typing import Any

from ray.serve.handle import DeploymentHandle

from models.service import (
    Analysis,
    AnalyzeRequest,
    ChurnScore,
    KbHit,
    ReplyHit,
    ShadowAgreement,
    SupportSignalsIn,
)


class ServeModels:
    def __init__(
        self,
        enricher: DeploymentHandle[Any],
        retriever: DeploymentHandle[Any],
        churn: DeploymentHandle[Any],
    ) -> None:
        self._enricher = enricher
        self._retriever = retriever
        self._churn = churn

    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]:
        result: list[Analysis] = await self._enricher.analyze.remote(requests)
        return result

    async def kb_search(
        self, tenant_id: uuid.UUID, query: str, k: int = 5, language: str | None = None
    ) -> list[KbHit]:
        hits: list[KbHit] = await self._retriever.kb_search.remote(tenant_id, query, k, language)
        return hits

    async def kb_refresh(self, tenant_id: uuid.UUID) -> None:
        await self._retriever.kb_refresh.remote(tenant_id)

    async def similar_replies(self, tenant_id: uuid.UUID, text: str, k: int = 3) -> list[ReplyHit]:
        hits: list[ReplyHit] = await self._retriever.similar_replies.remote(tenant_id, text, k)
        return hits

    async def churn(self, signals: SupportSignalsIn) -> ChurnScore:
        score: ChurnScore = await self._churn.score.remote(signals)
        return score

    async def versions(self) -> dict[str, str]:
        versions: dict[str, str] = await self._enricher.versions.remote()
        return versions

    async def shadow(self) -> list[ShadowAgreement]:
        # One Enricher replica's counts; with several, the Prometheus counter sums them.
        agreements: list[ShadowAgreement] = await self._enricher.shadow_report.remote()
        return agreements

    async def close(self) -> None:
        # The handles belong to the Serve application; nothing to release here.
        return None
