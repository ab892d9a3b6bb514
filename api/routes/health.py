"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, dict[str, str]]:
    try:
        await asyncio.wait_for(probe, timeout=5)
    except Exception as exc:
        return name, {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return name, {"status": "up"}


async def _db(runtime: Any) -> None:
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Every configured dependency answers: database, and Redis, Kafka and the S3 bucket
    when set."""
    probes = [_check("database", _db(runtime))]
    if runtime.settings.redis.url:
        probes.append(_check("redis", runtime.counter.ping()))
    if runtime.settings.kafka.bootstrap_servers:
        probes.append(_check("kafka", runtime.bus.ping()))
    if runtime.settings.storage.backend == "s3":
        probes.append(_check("storage", runtime.attachments.ping()))
    checks = dict(await asyncio.gather(*probes))
    ready = all(c["status"] == "up" for c in checks.values())
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "mode": runtime.settings.mode,
            "checks": checks,
        },
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition (the pipeline's metrics appended)."""
    body = generate_latest()
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is not None:
        body += await pipeline.exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
