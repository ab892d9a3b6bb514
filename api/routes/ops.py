"""Operations: the enrichment pipeline at a glance."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import Admin
from api.schemas.ops import PipelineSummary

router = APIRouter(prefix="/v1/ops", tags=["operations"])


@router.get("/pipeline", response_model=PipelineSummary)
async def pipeline(request: Request, principal: Admin) -> PipelineSummary:
    """Consumer lag per partition, consumers, throughput, batch sizes and latencies."""
    summary = await request.app.state.pipeline.summary()
    return PipelineSummary.model_validate(summary)
