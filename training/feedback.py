"""Labelled examples from people's reviews of the models, for the next training run.

`relaydesk train <task> --include-feedback` adds them to the training split only (never to
the frozen test set). A message reviewed more than once gives one example: its latest label
for the task. Confirmations are examples too: a person said the label is right."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.engine import create_engine, create_sessionmaker
from core.domain.feedback import AnalysisFeedback, FeedbackTask
from core.settings import Settings

F = AnalysisFeedback


@dataclass(frozen=True)
class FeedbackExample:
    task: str  # intent | sentiment | urgency
    text: str
    label: str
    tenant_id: uuid.UUID
    language: str | None
    model_version: str | None  # what was corrected
    created_at: datetime


def _task(task: str) -> str:
    try:
        return FeedbackTask(task).value
    except ValueError:
        known = ", ".join(t.value for t in FeedbackTask)
        raise ValueError(f"no feedback is kept for task {task!r}: one of {known}") from None


async def load_feedback(
    sessions: async_sessionmaker[AsyncSession],
    task: str,
    *,
    tenant_id: uuid.UUID | None = None,
    since: datetime | None = None,
) -> list[FeedbackExample]:
    """The latest label per message for `task` (of one tenant, given after `since`, if
    given), oldest first."""
    latest = func.row_number().over(
        partition_by=(F.message_id, F.task), order_by=(F.created_at.desc(), F.id.desc())
    )
    reviews = select(
        F.id, F.label, F.text, F.tenant_id, F.language, F.model_version, F.created_at
    ).add_columns(latest.label("rank"))
    reviews = reviews.where(F.task == _task(task))
    if tenant_id is not None:
        reviews = reviews.where(F.tenant_id == tenant_id)
    if since is not None:
        reviews = reviews.where(F.created_at >= since)
    ranked = reviews.subquery()
    query = select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.created_at, ranked.c.id)
    async with sessions() as session:
        rows = (await session.execute(query)).mappings().all()
    return [
        FeedbackExample(
            task=task,
            text=row["text"],
            label=row["label"],
            tenant_id=row["tenant_id"],
            language=row["language"],
            model_version=row["model_version"],
            created_at=row["created_at"],
        )
        for row in rows
    ]


def load_feedback_sync(settings: Settings, task: str, **kw: Any) -> list[FeedbackExample]:
    """`load_feedback` from synchronous code (a training job) on the database `settings`
    name; not from inside a running event loop."""

    async def run() -> list[FeedbackExample]:
        engine = create_engine(settings)
        try:
            return await load_feedback(create_sessionmaker(engine), task, **kw)
        finally:
            await engine.dispose()

    return asyncio.run(run())
