"""Helpers of the feedback tests: analyse a tenant's messages with the stub models, correct
them through the API, read the stored feedback rows."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from core.domain.feedback import AnalysisFeedback
from core.events.store import OutboxRecord
from core.settings import PipelineSettings
from pipelines.handler import EnrichmentHandler
from pipelines.items import WorkItem
from pipelines.schemas import decode_message_event
from tests.factories import TenantCtx, expect, inbound
from tests.pipeline_doubles import StubModels


async def _no_sleep(_seconds: float) -> None:
    return None


async def analyse_all(t: TenantCtx, version: str = "v1") -> None:
    """Run the tenant's received messages through the enrichment handler."""
    async with t.backend.runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(OutboxRecord)
                .where(
                    OutboxRecord.tenant_id == uuid.UUID(t.id),
                    OutboxRecord.event_type == "message.received",
                )
                .order_by(OutboxRecord.id)
            )
        ).all()
    items = [WorkItem.of(decode_message_event(row.payload)) for row in rows]
    handler = EnrichmentHandler(
        t.backend.runtime.sessions, StubModels(version), PipelineSettings(), sleep=_no_sleep
    )
    outcome = await handler.handle(items)
    assert not outcome.failed


async def analysed_message(t: TenantCtx, text: str, external_id: str = "ana") -> dict[str, Any]:
    received = await inbound(t, external_id=external_id, text=text)
    await analyse_all(t)
    return received


def analysis_url(message_id: str) -> str:
    return f"/v1/messages/{message_id}/analysis"


async def correct(
    t: TenantCtx,
    message_id: str,
    body: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Any:
    """PATCH the message's analysis (as the agent unless `headers` say otherwise)."""
    response = await t.client.patch(
        analysis_url(message_id), json=body, headers=headers or t.agent.headers
    )
    return expect(response, status)


async def feedback_rows(t: TenantCtx, message_id: str | None = None) -> list[AnalysisFeedback]:
    query = select(AnalysisFeedback).where(AnalysisFeedback.tenant_id == uuid.UUID(t.id))
    if message_id is not None:
        query = query.where(AnalysisFeedback.message_id == uuid.UUID(message_id))
    async with t.backend.runtime.sessions() as session:
        order = (AnalysisFeedback.created_at, AnalysisFeedback.id)
        return list((await session.scalars(query.order_by(*order))).all())
