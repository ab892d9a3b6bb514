"""How often people agreed with the live models: accuracy against their reviews.

A prediction counts once, with the latest review of it: the latest feedback row per
(message, task, model version). A confirmation is a review that kept the model's label."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.ai import QualityPublic, QualityTotalPublic, TaskQualityPublic
from core.domain.feedback import AnalysisFeedback

F = AnalysisFeedback


def _figures(reviewed: int, corrected: int) -> dict[str, Any]:
    accuracy = round((reviewed - corrected) / reviewed, 4) if reviewed else None
    return {"reviewed": reviewed, "corrected": corrected, "accuracy": accuracy}


async def quality(
    session: AsyncSession, tenant_id: uuid.UUID, since: datetime | None = None
) -> QualityPublic:
    """Per task and model version, per task, and overall, for one tenant."""
    rank = (
        func.row_number()
        .over(
            partition_by=(F.message_id, F.task, F.model_version),
            order_by=(F.created_at.desc(), F.id.desc()),
        )
        .label("rank")
    )
    latest = select(F.task, F.model_version, F.confirmed, rank).where(F.tenant_id == tenant_id)
    if since is not None:
        latest = latest.where(F.created_at >= since)
    reviews = latest.subquery()
    corrected = func.sum(1 - cast(reviews.c.confirmed, Integer))
    query = (
        select(reviews.c.task, reviews.c.model_version, func.count(), corrected)
        .where(reviews.c.rank == 1)
        .group_by(reviews.c.task, reviews.c.model_version)
        .order_by(reviews.c.task, reviews.c.model_version)
    )
    items = [
        TaskQualityPublic.model_validate(
            {"task": task, "model_version": version, **_figures(int(count), int(changed or 0))}
        )
        for task, version, count, changed in (await session.execute(query)).all()
    ]
    totals: dict[str, tuple[int, int]] = {}
    for item in items:
        reviewed, changed = totals.get(item.task, (0, 0))
        totals[item.task] = (reviewed + item.reviewed, changed + item.corrected)
    reviewed = sum(r for r, _ in totals.values())
    changed = sum(c for _, c in totals.values())
    return QualityPublic(
        since=since,
        items=items,
        totals=[
            QualityTotalPublic.model_validate({"task": task, **_figures(r, c)})
            for task, (r, c) in sorted(totals.items())
        ],
        **_figures(reviewed, changed),
    )
