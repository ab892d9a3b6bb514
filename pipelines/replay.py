"""Re-enrich stored messages with the current models (after a model update).

Messages created since a moment (of one tenant, or all) are read in id order and sent to
the models in batches, through the same handler as the live pipeline; each answer becomes a
new `message_analyses` row under the new model version, next to the old rows (reads show
the newest). Messages that already have a row from the current models are not sent again,
so an interrupted replay can simply be run again. Replay writes analysis rows only: the
conversation's running insight and the `message.analyzed` events belong to the live
pipeline, which saw the messages in order."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain.analyses import MessageAnalysis
from core.domain.conversations import Message
from core.settings import PipelineSettings
from pipelines.handler import Analyze, EnrichmentHandler, Outcome
from pipelines.items import STORED_COLUMNS, WorkItem


@dataclass
class ReplaySummary:
    messages: int = 0  # in scope
    written: int = 0  # new rows
    unchanged: int = 0  # already analyzed by the current models
    failed: int = 0
    model_version: str | None = None  # of the current models
    before: dict[str, int] = field(default_factory=dict)  # rows in scope by version, before
    written_by_version: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the first few
    dry_run: bool = False
    elapsed_s: float = 0.0


def _scope(since: datetime, tenant_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Message.created_at >= since]
    if tenant_id is not None:
        where.append(Message.tenant_id == tenant_id)
    return where


async def _count(session: AsyncSession, since: datetime, tenant_id: uuid.UUID | None) -> int:
    query = select(func.count()).select_from(Message).where(*_scope(since, tenant_id))
    return int(await session.scalar(query) or 0)


async def _versions(
    session: AsyncSession, since: datetime, tenant_id: uuid.UUID | None
) -> dict[str, int]:
    rows = await session.execute(
        select(MessageAnalysis.model_version, func.count())
        .join(Message, Message.id == MessageAnalysis.message_id)
        .where(*_scope(since, tenant_id))
        .group_by(MessageAnalysis.model_version)
    )
    return {version: int(n) for version, n in rows.all()}


async def replay(
    sessions: async_sessionmaker[AsyncSession],
    models: Analyze,
    settings: PipelineSettings,
    *,
    since: datetime,
    tenant_id: uuid.UUID | None = None,
    dry_run: bool = False,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> ReplaySummary:
    """Re-enrich; `progress(done, total)` is called after every batch.
    A dry run asks the models about one message (to learn their version) and writes
    nothing: `written` then says how many rows a real run would add."""
    started = time.monotonic()
    summary = ReplaySummary(dry_run=dry_run)
    async with sessions() as session:
        summary.messages = await _count(session, since, tenant_id)
        summary.before = await _versions(session, since, tenant_id)
    handler = EnrichmentHandler(sessions, models, settings)
    after = uuid.UUID(int=0)
    done = 0
    while True:
        items = await _page(sessions, since, tenant_id, after, batch_size)
        if not items:
            break
        after = items[-1].message_id
        if dry_run:
            await _dry_run(sessions, handler, items[0], since, tenant_id, summary)
            break
        enriched, outcome = await handler.enrich(items)
        await handler.write(enriched, outcome, source="replay", effects=False)
        _add(summary, outcome)
        done += len(items)
        if progress is not None:
            progress(done, summary.messages)
    summary.model_version = handler.current_version
    summary.elapsed_s = round(time.monotonic() - started, 3)
    return summary


async def _page(
    sessions: async_sessionmaker[AsyncSession],
    since: datetime,
    tenant_id: uuid.UUID | None,
    after: uuid.UUID,
    size: int,
) -> list[WorkItem]:
    async with sessions() as session:
        rows = (
            await session.execute(
                select(*STORED_COLUMNS)
                .where(*_scope(since, tenant_id), Message.id > after)
                .order_by(Message.id)
                .limit(size)
            )
        ).all()
    return [WorkItem.of_row(r) for r in rows]


async def _dry_run(
    sessions: async_sessionmaker[AsyncSession],
    handler: EnrichmentHandler,
    probe: WorkItem,
    since: datetime,
    tenant_id: uuid.UUID | None,
    summary: ReplaySummary,
) -> None:
    enriched, outcome = await handler.enrich([probe])
    if not enriched:
        summary.failed = len(outcome.failed)
        summary.errors = [f.error for f in outcome.failed][:5]
        return
    current = enriched[0].model_version
    done = summary.before.get(current, 0)
    summary.unchanged = done
    summary.written = summary.messages - done
    summary.written_by_version = {current: summary.written} if summary.written else {}
    handler.current_version = current


def _add(summary: ReplaySummary, outcome: Outcome) -> None:
    result = outcome.result
    summary.written += len(result.written)
    summary.unchanged += outcome.skipped + result.duplicates
    summary.failed += len(outcome.failed)
    counts = Counter(e.model_version for e in result.written)
    for version, n in counts.items():
        summary.written_by_version[version] = summary.written_by_version.get(version, 0) + n
    if len(summary.errors) < 5:
        summary.errors.extend(f"{f.reason}: {f.error}" for f in outcome.failed[:5])
