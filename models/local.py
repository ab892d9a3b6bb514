"""`LocalModels`: the model service port served in-process (tests, scripts, `--no-serve`).

The analyzer loads on the first call that needs it, in a worker thread, so that building a
process that never analyzes costs nothing. Model work runs in worker threads
(`asyncio.to_thread`): the event loop keeps serving while a batch is encoded. Knowledge
retrieval and reply suggestions are delegated to a `RetrievalPort`; without one they raise
`ModelUnavailableError` (the API's 503), and `kb_refresh` does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from models.churn.scorer import CHURN_MODEL_VERSION, score_churn
from models.service import (
    Analysis,
    AnalyzeRequest,
    ChurnScore,
    KbHit,
    ModelUnavailableError,
    ReplyHit,
    ShadowAgreement,
    SupportSignalsIn,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from core.settings import AiSettings, Settings
    from models.analyzer import Analyzer
    from models.encoder import Kind

logger = logging.getLogger(__name__)

NO_RETRIEVAL = "knowledge retrieval is not available"

Embed = Callable[[list[str], "Kind"], Awaitable["npt.NDArray[np.float32]"]]


class RetrievalPort(Protocol):
    """Knowledge-base search and similar resolved replies, per tenant."""

    async def kb_search(
        self, tenant_id: uuid.UUID, query: str, k: int = 5, language: str | None = None
    ) -> list[KbHit]: ...

    async def kb_refresh(self, tenant_id: uuid.UUID) -> None: ...

    async def similar_replies(
        self, tenant_id: uuid.UUID, text: str, k: int = 3
    ) -> list[ReplyHit]: ...

    async def close(self) -> None: ...


class LocalModels:
    """The `ModelService` port on an in-process `Analyzer` (given, or loaded on first use)
    and an optional `RetrievalPort`."""

    def __init__(
        self,
        analyzer: Analyzer | Callable[[], Analyzer],
        retrieval: RetrievalPort | None = None,
    ) -> None:
        # callable(): an Analyzer is not, and checking so keeps this import light
        self._load = analyzer if callable(analyzer) else None
        self._analyzer = None if callable(analyzer) else analyzer
        self._loading = asyncio.Lock()
        self.retrieval = retrieval

    @property
    def loaded(self) -> Analyzer | None:
        """The analyzer if it is loaded; None before the first call that needs it."""
        return self._analyzer

    async def analyzer(self) -> Analyzer:
        """The analyzer, loaded once (in a worker thread) on first use."""
        if self._analyzer is not None:
            return self._analyzer
        async with self._loading:
            if self._analyzer is None:
                assert self._load is not None
                started = time.perf_counter()
                try:
                    self._analyzer = await asyncio.to_thread(self._load)
                except (OSError, ImportError, ValueError, RuntimeError) as exc:
                    logger.exception("the models failed to load")
                    raise ModelUnavailableError(f"the models failed to load: {exc}") from exc
                logger.info("loaded the analyzer in %.1f ms", (time.perf_counter() - started) * 1e3)
        return self._analyzer

    async def embed(self, texts: list[str], kind: Kind) -> npt.NDArray[np.float32]:
        """The shared encoder's vectors of `texts` ("query" or "passage" side)."""
        analyzer = await self.analyzer()
        return await asyncio.to_thread(analyzer.encoder.encode, texts, kind)

    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]:
        if not requests:
            return []
        analyzer = await self.analyzer()
        return await asyncio.to_thread(analyzer.analyze, requests)

    def _retrieval(self) -> RetrievalPort:
        if self.retrieval is None:
            raise ModelUnavailableError(NO_RETRIEVAL)
        return self.retrieval

    async def kb_search(
        self, tenant_id: uuid.UUID, query: str, k: int = 5, language: str | None = None
    ) -> list[KbHit]:
        return await self._retrieval().kb_search(tenant_id, query, k, language)

    async def kb_refresh(self, tenant_id: uuid.UUID) -> None:
        # Without retrieval there is no index to refresh; the articles are stored either way.
        if self.retrieval is not None:
            await self.retrieval.kb_refresh(tenant_id)

    async def similar_replies(self, tenant_id: uuid.UUID, text: str, k: int = 3) -> list[ReplyHit]:
        return await self._retrieval().similar_replies(tenant_id, text, k)

    async def churn(self, signals: SupportSignalsIn) -> ChurnScore:
        return score_churn(signals)  # a few float operations: no thread hop

    async def versions(self) -> dict[str, str]:
        """Versions of what is loaded: the churn score always, the analyzer's models once
        they are loaded (asking does not load them)."""
        out = {"churn": CHURN_MODEL_VERSION}
        if self._analyzer is not None:
            out.update(self._analyzer.versions())
        return out

    async def shadow(self) -> list[ShadowAgreement]:
        """The analyzer's shadow agreement counts (none before it is loaded)."""
        return self._analyzer.shadow_tally.report() if self._analyzer is not None else []

    async def close(self) -> None:
        if self.retrieval is not None:
            await self.retrieval.close()


def build_retrieval(
    sessions: async_sessionmaker[AsyncSession], embed: Embed, ai: AiSettings
) -> RetrievalPort | None:
    """Knowledge retrieval over the tenant's articles and resolved conversations, or None
    where this installation has none (knowledge endpoints then answer 503)."""
    from models.retrieval import Retrieval

    return Retrieval(sessions, embed, ai)


def build_local_models(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    analyzer: Analyzer | None = None,
) -> LocalModels:
    """The in-process model service of a process: `analyzer` when given (shared by tests),
    else one loaded from `settings.models_dir` on first use."""

    def load() -> Analyzer:
        from models.analyzer import Analyzer

        datasets = settings.data_dir / "datasets"
        return Analyzer.load(settings.models_dir, settings.ai, datasets_dir=datasets)

    models = LocalModels(analyzer if analyzer is not None else load)
    models.retrieval = build_retrieval(sessions, models.embed, settings.ai)
    return models
