"""`Retrieval`: knowledge-base search and reply suggestions for every tenant, read from the
database by each replica, so that replicas agree and a restart rebuilds from the source."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import AiSettings
from models.retrieval.centering import LanguageCentroids
from models.retrieval.followers import (
    AsyncEmbed,
    Deps,
    Follower,
    KbFollower,
    ReplyFollower,
    Timing,
)
from models.retrieval.kb_index import RetrievalParams
from models.retrieval.vectors import FaissIndex, VectorIndex
from models.service import KbHit, ReplyHit

__all__ = ["MAX_QUERY_CHARS", "Retrieval"]

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000  # a longer query is cut: the encoder reads 512 tokens anyway


class Retrieval:
    """Per-tenant KB and resolved-case indexes kept current from the database.

    `embed(texts, kind)` returns L2-normalised float32 vectors (the shared e5 encoder, in
    process or behind a Serve handle). Each index catches up with the database before a
    search when its last pass began more than `poll_seconds` ago, so a write is searchable
    within about that long on every replica; `kb_refresh` catches up at once. A tenant's
    first search builds its indexes (waiting at most `wait_seconds`, then serving what is
    built while the rest follows)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        embed: AsyncEmbed,
        ai: AiSettings,
        *,
        poll_seconds: float = 2.0,
        wait_seconds: float = 10.0,
        overlap_seconds: float = 30.0,
        reconcile_seconds: float = 300.0,
        params: RetrievalParams | None = None,
        vector_index: Callable[[int], VectorIndex] | None = None,
    ) -> None:
        self._embed = embed
        self._params = params or RetrievalParams()
        self._centroids: LanguageCentroids | None = None
        self._centroids_lock = asyncio.Lock()
        timing = Timing(
            poll_seconds=poll_seconds,
            wait_seconds=wait_seconds,
            overlap=timedelta(seconds=overlap_seconds),
            reconcile_seconds=reconcile_seconds,
        )
        hnsw_min = ai.hnsw_min_chunks
        self._deps = Deps(
            sessions=sessions,
            embed=embed,
            centroids=self._language_centroids,
            vector_index=vector_index or (lambda dim: FaissIndex(dim, hnsw_min=hnsw_min)),
            timing=timing,
        )
        self._kb: dict[uuid.UUID, KbFollower] = {}
        self._replies: dict[uuid.UUID, ReplyFollower] = {}

    async def warm_up(self) -> None:
        """Embed the language-centering reference set now rather than on the first search."""
        await self._language_centroids()

    async def kb_search(
        self, tenant_id: uuid.UUID, query: str, k: int = 5, language: str | None = None
    ) -> list[KbHit]:
        """The `k` best published articles for `query`, each cited by its best chunk.
        `language` (the query's, when known) replaces detection; it does not filter."""
        query = query.strip()[:MAX_QUERY_CHARS]
        if not query or k <= 0:
            return []
        follower = self._kb_follower(tenant_id)
        vector, _ = await asyncio.gather(self._embed_one(query), follower.fresh())
        index = follower.index
        if index is None:
            return []
        async with follower.lock:
            return await asyncio.to_thread(index.search, query, vector, k, language=language)

    async def kb_refresh(self, tenant_id: uuid.UUID) -> None:
        """Catch up with the tenant's article changes now (after a write)."""
        await self._kb_follower(tenant_id).fresh(force=True)

    async def similar_replies(self, tenant_id: uuid.UUID, text: str, k: int = 3) -> list[ReplyHit]:
        """The `k` resolved conversations whose customer messages are closest to `text`,
        with the agent reply that answered them."""
        text = text.strip()[:MAX_QUERY_CHARS]
        if not text or k <= 0:
            return []
        follower = self._reply_follower(tenant_id)
        vector, _ = await asyncio.gather(self._embed_one(text), follower.fresh())
        index = follower.index
        if index is None:
            return []
        async with follower.lock:
            return await asyncio.to_thread(index.search, text, vector, k)

    async def close(self) -> None:
        followers: list[Follower] = [*self._kb.values(), *self._replies.values()]
        await asyncio.gather(*(f.close() for f in followers))
        self._kb.clear()
        self._replies.clear()

    def _kb_follower(self, tenant_id: uuid.UUID) -> KbFollower:
        if tenant_id not in self._kb:
            self._kb[tenant_id] = KbFollower(tenant_id, self._deps, self._params)
        return self._kb[tenant_id]

    def _reply_follower(self, tenant_id: uuid.UUID) -> ReplyFollower:
        if tenant_id not in self._replies:
            self._replies[tenant_id] = ReplyFollower(tenant_id, self._deps)
        return self._replies[tenant_id]

    async def _embed_one(self, text: str) -> npt.NDArray[np.float32]:
        vectors = np.asarray(await self._embed([text], "query"), dtype=np.float32)
        first: npt.NDArray[np.float32] = vectors[0]
        return first

    async def _language_centroids(self) -> LanguageCentroids:
        async with self._centroids_lock:
            if self._centroids is None:
                self._centroids = await LanguageCentroids.compute_async(self._embed)
                logger.info(
                    "language centroids computed for %d languages",
                    len(self._centroids.means["query"]),
                )
            return self._centroids
