"""The enrichment handler: the code the Kafka consumers and the in-process subscriber share.

    outcome = await handler.handle(items)   # analyze (with retries), then one transaction

1. Requests: each message with its channel type and its tenant's intent taxonomy.
2. Analysis: one `analyze` call for the batch (the Enricher deployment, or any
   `ModelService`). A failing call is retried with exponential backoff; after
   `max_attempts` the messages are analyzed one by one (same retries), so one poison message
   cannot hold back the others, and those still failing come back as `failed`.
3. `writer.write_batch`: rows, effects and `message.analyzed`, in one transaction. A
   database that cannot be reached is waited for (nothing is dropped); a batch the database
   refuses is written message by message and the refused ones come back as `failed`.

The caller decides what `failed` means: the Kafka consumer dead-letters them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from core.domain.analyses import MessageAnalysis
from core.domain.channels import Channel
from core.settings import PipelineSettings
from models.service import Analysis, AnalyzeRequest, TenantTaxonomy
from pipelines.items import Enriched, WorkItem
from pipelines.writer import WriteResult, write_batch

logger = logging.getLogger(__name__)

TAXONOMY_TTL_S = 30.0
MAX_WRITE_BACKOFF_S = 30.0


class Analyze(Protocol):
    """What the handler needs of the models (`ModelService` has it, and so does the
    Enricher deployment's handle)."""

    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]: ...


@dataclass(frozen=True)
class Failure:
    item: WorkItem
    reason: str  # enrichment_failed, write_failed, unknown_message
    error: str
    attempts: int


@dataclass
class Outcome:
    result: WriteResult = field(default_factory=WriteResult)
    failed: list[Failure] = field(default_factory=list)
    skipped: int = 0  # already analyzed with the current models: not sent to the models
    retries: int = 0


Sleep = Callable[[float], Awaitable[None]]


class EnrichmentHandler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        models: Analyze,
        settings: PipelineSettings,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.sessions = sessions
        self.models = models
        self.settings = settings
        self._sleep = sleep
        self._channel_types: dict[uuid.UUID, str] = {}
        self._taxonomies: dict[uuid.UUID, tuple[float, TenantTaxonomy]] = {}
        # The model version of the latest analysis: a redelivered message already analyzed
        # with it is not sent to the models again.
        self.current_version: str | None = None

    async def handle(self, items: list[WorkItem]) -> Outcome:
        enriched, outcome = await self.enrich(items)
        await self.write(enriched, outcome)
        return outcome

    # ----------------------------------------------------------------------- analysis
    async def enrich(self, items: list[WorkItem]) -> tuple[list[Enriched], Outcome]:
        outcome = Outcome()
        items = await self._not_yet_analyzed(items, outcome)
        if not items:
            return [], outcome
        requests = await self._requests(items)
        analyses, error = await self._analyze_with_retries(requests, outcome)
        if analyses is not None:
            return self._pair(items, analyses), outcome
        logger.warning("batch of %d failed enrichment (%s); trying one by one", len(items), error)
        enriched: list[Enriched] = []
        for item, request in zip(items, requests, strict=True):
            single, error = await self._analyze_with_retries([request], outcome)
            if single is None:
                outcome.failed.append(
                    Failure(item, "enrichment_failed", error, self.settings.max_attempts)
                )
            else:
                enriched.extend(self._pair([item], single))
        return enriched, outcome

    def _pair(self, items: list[WorkItem], analyses: list[Analysis]) -> list[Enriched]:
        pairs = [Enriched(item, a) for item, a in zip(items, analyses, strict=True)]
        if pairs:
            self.current_version = pairs[-1].model_version
        return pairs

    async def _analyze_with_retries(
        self, requests: list[AnalyzeRequest], outcome: Outcome
    ) -> tuple[list[Analysis] | None, str]:
        error = ""
        for attempt in range(self.settings.max_attempts):
            if attempt:
                outcome.retries += 1
                await self._sleep(self.settings.retry_backoff_ms / 1000 * 2 ** (attempt - 1))
            try:
                analyses = await self.models.analyze(requests)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                continue
            if len(analyses) == len(requests):
                return analyses, ""
            error = f"{len(analyses)} analyses for {len(requests)} messages"
        return None, error

    async def _not_yet_analyzed(self, items: list[WorkItem], outcome: Outcome) -> list[WorkItem]:
        if self.current_version is None or not items:
            return items
        async with self.sessions() as session:
            done = set(
                (
                    await session.scalars(
                        select(MessageAnalysis.message_id).where(
                            MessageAnalysis.message_id.in_([i.message_id for i in items]),
                            MessageAnalysis.model_version == self.current_version,
                        )
                    )
                ).all()
            )
        outcome.skipped += sum(1 for i in items if i.message_id in done)
        return [i for i in items if i.message_id not in done]

    async def _requests(self, items: list[WorkItem]) -> list[AnalyzeRequest]:
        async with self.sessions() as session:
            await self._load_channel_types(session, {i.channel_id for i in items})
            taxonomies = {
                tenant: await self._taxonomy(session, tenant)
                for tenant in {i.tenant_id for i in items}
            }
        return [
            AnalyzeRequest(
                text=item.text,
                channel=self._channel_types.get(item.channel_id),
                taxonomy=taxonomies[item.tenant_id],
            )
            for item in items
        ]

    async def _load_channel_types(self, session: AsyncSession, ids: set[uuid.UUID]) -> None:
        # A channel's type never changes: cached for the life of the consumer.
        missing = [i for i in ids if i not in self._channel_types]
        if missing:
            rows = await session.execute(
                select(Channel.id, Channel.type).where(Channel.id.in_(missing))
            )
            self._channel_types.update({row.id: row.type for row in rows})

    async def _taxonomy(self, session: AsyncSession, tenant_id: uuid.UUID) -> TenantTaxonomy:
        from api.services.intents import tenant_taxonomy

        cached = self._taxonomies.get(tenant_id)
        if cached is not None and time.monotonic() - cached[0] < TAXONOMY_TTL_S:
            return cached[1]
        taxonomy = await tenant_taxonomy(session, tenant_id)
        self._taxonomies[tenant_id] = (time.monotonic(), taxonomy)
        return taxonomy

    # -------------------------------------------------------------------------- write
    async def write(
        self,
        enriched: list[Enriched],
        outcome: Outcome,
        *,
        source: str = "pipeline",
        effects: bool = True,
    ) -> None:
        """Write `enriched` in one transaction, into `outcome` (`effects=False`: the
        analysis rows only, see `writer.write_batch`)."""
        if not enriched:
            return
        try:
            result = await self._write_retrying(enriched, source, effects)
        except Exception as exc:
            logger.warning("batch write refused (%s); writing one by one", exc)
            result = WriteResult()
            for one in enriched:
                try:
                    part = await self._write_retrying([one], source, effects)
                except Exception as single:
                    outcome.failed.append(
                        Failure(one.item, "write_failed", f"{type(single).__name__}: {single}", 1)
                    )
                    continue
                _merge(result, part)
        outcome.result = result
        outcome.failed.extend(
            Failure(item, "unknown_message", "no such message in this tenant", 1)
            for item in result.missing
        )

    async def _write_retrying(
        self, enriched: list[Enriched], source: str, effects: bool
    ) -> WriteResult:
        delay = max(self.settings.retry_backoff_ms / 1000, 0.05)
        while True:
            try:
                return await write_batch(self.sessions, enriched, source=source, effects=effects)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _transient(exc):
                    raise
                logger.warning("database write failed (%s); retrying in %.1f s", exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, MAX_WRITE_BACKOFF_S)


def _transient(exc: Exception) -> bool:
    """A failure that the same write can get past later: the database is unreachable, the
    transaction lost a race (serialization, deadlock, a ticket edited meanwhile)."""
    if isinstance(exc, OperationalError | InterfaceError | StaleDataError | OSError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return code in ("40001", "40P01")  # serialization failure, deadlock
    return False


def _merge(into: WriteResult, part: WriteResult) -> None:
    into.written.extend(part.written)
    into.duplicates += part.duplicates
    into.missing.extend(part.missing)
    into.message_created.update(part.message_created)
    into.committed_at = max(into.committed_at, part.committed_at)
