"""`Retriever`: knowledge-base search and reply suggestions, embedding through `Encoder`."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from core.db.engine import create_engine, create_sessionmaker
from models.retrieval import Retrieval
from models.service import KbHit, ReplyHit
from serve.options import AppArgs


@serve.deployment(name="Retriever", max_ongoing_requests=64)
class RetrieverDeployment:
    # Ray runs an async constructor to completion before the replica takes requests.
    async def __init__(self, encoder: DeploymentHandle[Any], args: AppArgs) -> None:  # type: ignore[misc]
        settings = args.settings()
        self._encoder = encoder
        self._engine = create_engine(settings)
        # Each replica reads the articles itself and catches up on changes, so a restarted
        # or added replica needs nobody to replay writes to it.
        self.retrieval = Retrieval(create_sessionmaker(self._engine), self._embed, settings.ai)
        # The language-centering vectors, embedded now rather than inside the first search.
        await self.retrieval.warm_up()

    async def _embed(self, texts: list[str], kind: Literal["query", "passage"]) -> np.ndarray:
        vectors: np.ndarray = await self._encoder.encode.remote(texts, kind)
        return vectors

    async def kb_search(
        self, tenant_id: uuid.UUID, query: str, k: int = 5, language: str | None = None
    ) -> list[KbHit]:
        return await self.retrieval.kb_search(tenant_id, query, k, language)

    async def kb_refresh(self, tenant_id: uuid.UUID) -> None:
        await self.retrieval.kb_refresh(tenant_id)

    async def similar_replies(self, tenant_id: uuid.UUID, text: str, k: int = 3) -> list[ReplyHit]:
        return await self.retrieval.similar_replies(tenant_id, text, k)

    async def __del__(self) -> None:
        await self.retrieval.close()
        await self._engine.dispose()
