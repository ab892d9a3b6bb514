"""The FastAPI application: routers, error handlers, middleware and lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.cors import WidgetCors
from api.errors import install_error_handlers
from api.fast_lists import FastLists
from api.middleware import RequestGuard
from api.routes import (
    ai,
    api_keys,
    attachments,
    auth,
    channels,
    conversations,
    customers,
    health,
    inbound,
    intents,
    kb,
    messages,
    ops,
    tickets,
    users,
    webhooks,
    widget,
)
from api.services.channel_workers import ChannelWorkers
from core.runtime import Runtime
from core.settings import Settings, get_settings
from pipelines.inprocess import Enrichment, start_in_process
from pipelines.ops import PipelineMonitor

logger = logging.getLogger(__name__)

# Matched in this order, route by route, on every request: the busiest paths (channel
# traffic, the agents' lists) come first. No two routers share a path.
ROUTERS = (
    webhooks.router,
    inbound.router,
    conversations.router,
    tickets.router,
    widget.router,
    messages.router,
    attachments.router,
    customers.router,
    auth.router,
    users.router,
    api_keys.router,
    channels.router,
    ai.router,
    kb.router,
    intents.router,
    ops.router,
    health.router,
)


def tune_gc(settings: Settings) -> None:
    """Once started: freeze what start-up allocated (modules, models, metadata: a few
    hundred thousand objects the collector would otherwise walk again and again), and
    collect young objects every `gc_young_threshold` allocations instead of 700. Under
    load, full collections over those objects stalled every request in the process for
    tens of milliseconds: the list benchmark's p95 went from 112 to 35 ms with this
    (docs/benchmarks.md). 0 leaves the collector as Python sets it."""
    threshold = settings.api.gc_young_threshold
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    *,
    enrichment: Enrichment = "off",
    channel_workers: bool = False,
) -> FastAPI:
    """Build the API. Pass a `runtime` to share one engine and bus (tests, Serve).
    `enrichment` says which part of the message pipeline runs in this process
    (pipelines/inprocess.py), `channel_workers` whether the channels' background work
    (reply delivery, IMAP polling, template sync: api/services/channel_workers.py) does:
    `relaydesk up --no-serve` asks for both, tests and tools for neither, and the Serve
    ingress leaves the workers to their own deployment."""
    owns_runtime = runtime is None
    settings = settings or (runtime.settings if runtime else get_settings())
    runtime = runtime or Runtime.build(settings)
    monitor = PipelineMonitor(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A missing bucket or wrong credentials stop the start with the reason.
        await runtime.attachments.start()
        await runtime.bus.start()
        runtime.relay.start()
        monitor.local = await start_in_process(runtime, enrichment)
        workers = ChannelWorkers(runtime) if channel_workers else None
        if workers is not None:
            workers.start()
            runtime.on_reply_queued = workers.reply_queued
        app.state.channel_workers = workers
        tune_gc(settings)
        logger.info("RelayDesk API ready (%s mode)", settings.mode)
        try:
            yield
        finally:
            if workers is not None:
                runtime.on_reply_queued = None
                await workers.stop()
            if monitor.local is not None:
                await monitor.local.stop()
            if owns_runtime:
                await runtime.close()

    app = FastAPI(
        title="RelayDesk API",
        version="0.1.0",
        summary="Tickets and conversations for AI-first customer support.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.pipeline = monitor
    app.state.channel_workers = None
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # Added first, so it runs inside the request guard (metrics, request ids, limits).
    app.add_middleware(FastLists, runtime=runtime)
    app.add_middleware(RequestGuard, runtime=runtime)
    app.add_middleware(WidgetCors)
    return app
