"""`Enricher`: language, entities, intent, sentiment and urgency for a batch of messages,
with the one embedding per message computed by the shared `Encoder` deployment.

Model versions change in place: `user_config` names the head versions to serve and the
challengers to shadow (`EnricherConfig`), and `reconfigure` builds that set in a worker
thread while requests keep flowing, then swaps it in with one assignment. A version that
cannot be loaded leaves the old set serving: `reconfigure` never raises (Serve would replace
the replica), and `heads_status` says what went wrong.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from typing import Any, cast

import numpy as np
from pydantic import ValidationError
from ray import serve
from ray.serve import metrics
from ray.serve.handle import DeploymentHandle

from core.settings import Settings
from models import entities as entity_model
from models import language as language_model
from models.analyzer import Analyzer
from models.head_set import HeadLoadError, HeadSet, resolve_heads
from models.registry import ModelRegistry
from models.service import Analysis, AnalyzeRequest, ShadowAgreement
from serve.options import AppArgs, EnricherConfig, HeadsStatus

logger = logging.getLogger(__name__)

# Concurrent callers' messages are analyzed together: one prepare/finish hop to a worker
# thread and one Encoder request per batch instead of per call. A long request is cut in
# parts of this size; the wait is short next to one encoder pass. Several batches are in
# flight so that one is prepared while another waits for the Encoder (docs/benchmarks.md).
MAX_BATCH_MESSAGES = 64
BATCH_WAIT_S = 0.002
CONCURRENT_BATCHES = 4


def _messages_in(items: list[list[AnalyzeRequest]]) -> int:
    return sum(len(requests) for requests in items)


def open_registry(settings: Settings) -> ModelRegistry:
    """The model registry the replicas load head versions from."""
    return ModelRegistry.from_settings(settings)


@serve.deployment(name="Enricher", max_ongoing_requests=MAX_BATCH_MESSAGES * CONCURRENT_BATCHES)
class EnricherDeployment:
    def __init__(self, encoder: DeploymentHandle[Any], args: AppArgs) -> None:
        settings = args.settings()
        self._settings = settings
        self._encoder = encoder
        # The local encoder only tokenizes (where a long text is cut) and embeds a tenant's
        # few-shot intent examples, once each; messages go through the Encoder deployment.
        # Models are built before deployment (`relaydesk up`, `relaydesk models build`).
        self.analyzer = Analyzer.load(settings.models_dir, settings.ai, build_if_missing=False)
        # spaCy and the language model load lazily: at start, not on the first messages.
        language_model.warm_up()
        entity_model.warm_up()
        self._shadow_counter = metrics.Counter(
            "relaydesk_shadow_answers",
            description="Answers of challengers run in shadow, by agreement with the served head.",
            # Ray's stub types tag_keys as a 1-tuple
            tag_keys=cast(Any, ("task", "champion", "challenger", "outcome")),
        )
        self.analyzer.shadow_tally.listener = self._count_shadow
        self._replica = serve.get_replica_context().replica_id.unique_id
        self._started = False
        self._requested: dict[str, Any] | None = None
        self._status = self._describe(None, None, 0.0, None)
        # Serve may deliver a new user_config while the last one still loads: one at a time.
        self._reconfiguring = asyncio.Lock()
        self._loading: set[asyncio.Task[None]] = set()

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """`user_config`, applied in place. At replica start the configured heads load
        before the first request; later changes load in the background, because Serve takes
        a replica out of routing until `reconfigure` returns and requests would wait on the
        load. The new set goes in with one assignment; on any failure the served set stays
        and `heads_status` keeps the error."""
        if not self._started:
            self._started = True
            await self._apply(config)
            return
        self._requested = config
        self._status = replace(self._status, requested=config, pending=True)
        task = asyncio.create_task(self._apply(config))
        self._loading.add(task)  # keep a reference until it is done
        task.add_done_callback(self._loading.discard)

    async def _apply(self, config: dict[str, Any]) -> None:
        # One load at a time, in the order the configs came (asyncio.Lock is FIFO).
        async with self._reconfiguring:
            started = time.perf_counter()
            try:
                parsed = EnricherConfig.model_validate(config)
                heads = await asyncio.to_thread(self._resolve, parsed)
            except (ValidationError, HeadLoadError) as exc:
                self._failed(config, str(exc), started)
                return
            except Exception as exc:  # keep serving: a load must never take the replica down
                logger.exception("reconfigure failed")
                self._failed(config, f"{type(exc).__name__}: {exc}", started)
                return
            if parsed.min_confidence is not None:
                update = {"min_confidence": parsed.min_confidence}
                self.analyzer.ai = self.analyzer.ai.model_copy(update=update)
            self.analyzer.swap_heads(heads)
            load_ms = (time.perf_counter() - started) * 1e3
            self._status = self._describe(config, None, load_ms, time.time())
            logger.info("serving heads %s after %.1f ms", dict(heads.versions), load_ms)

    def _resolve(self, config: EnricherConfig) -> HeadSet:
        analyzer = self.analyzer
        heads: dict[str, str] = dict(config.heads.items())
        shadow: dict[str, str] = dict(config.shadow.items())
        settings = self._settings
        return resolve_heads(
            lambda: open_registry(settings), analyzer.encoder, analyzer.bundle_heads, heads, shadow
        )

    def _failed(self, config: dict[str, Any], error: str, started: float) -> None:
        logger.warning("keeping heads %s: %s", dict(self.analyzer.heads.versions), error)
        load_ms = (time.perf_counter() - started) * 1e3
        self._status = self._describe(config, error, load_ms, self._status.swapped_at)

    def _describe(
        self, applied: dict[str, Any] | None, error: str | None, ms: float, at: float | None
    ) -> HeadsStatus:
        """Status after `applied` was served or refused; still pending while a later config
        waits for its turn."""
        heads = self.analyzer.heads
        latest = self._requested if self._requested is not None else applied
        return HeadsStatus(
            replica=self._replica,
            pid=os.getpid(),
            requested=latest,
            pending=latest != applied,
            versions=dict(heads.versions),
            shadow=dict(heads.shadow.versions) if heads.shadow else {},
            error=error,
            load_ms=round(ms, 1),
            swapped_at=at,
        )

    def heads_status(self) -> HeadsStatus:
        return self._status

    def shadow_report(self) -> list[ShadowAgreement]:
        return self.analyzer.shadow_tally.report()

    def _count_shadow(
        self, task: str, champion: str, challenger: str, compared: int, agreed: int
    ) -> None:
        tags = {"task": task, "champion": champion, "challenger": challenger}
        if agreed:
            self._shadow_counter.inc(agreed, tags={**tags, "outcome": "agreed"})
        if compared - agreed:
            self._shadow_counter.inc(compared - agreed, tags={**tags, "outcome": "differed"})

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
        max_concurrent_batches=CONCURRENT_BATCHES,
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
        heads = analyzer.heads  # one set for the whole batch, whatever swaps meanwhile
        prepared = await asyncio.to_thread(analyzer.prepare, requests)
        texts = analyzer.texts_to_encode(prepared, heads)
        vectors: np.ndarray
        if texts:
            vectors = await self._encoder.encode.remote(texts, "query")
        else:
            vectors = np.zeros((0, analyzer.encoder.dim), dtype=np.float32)
        return await asyncio.to_thread(analyzer.finish, requests, prepared, vectors, heads)
