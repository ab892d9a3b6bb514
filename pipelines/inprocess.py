"""The part of the pipeline an API process runs itself, chosen by `create_app(enrichment=)`:

- `"embedded"`: without Kafka, the in-process subscriber (`EmbeddedPipeline`); with Kafka,
  nothing (the Ray actor pool of `relaydesk up` consumes).
- `"all"`: the same without Kafka; with Kafka, one `EnrichmentConsumer` in this process
  (`relaydesk up --no-serve`), restarted from the committed offsets if it fails.
- `"off"`: nothing (tests, tools)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

from core.events.bus import InMemoryEventBus
from core.runtime import Runtime
from pipelines.consumer import EnrichmentConsumer
from pipelines.embedded import EmbeddedPipeline

logger = logging.getLogger(__name__)

Enrichment = Literal["off", "embedded", "all"]
RESTART_DELAY_S = 2.0


class InProcessConsumer:
    """One Kafka consumer in this process, started again after a failure."""

    name = "in-process"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.consumer = self._new()
        self._task: asyncio.Task[None] | None = None

    def _new(self) -> EnrichmentConsumer:
        runtime = self.runtime
        return EnrichmentConsumer(
            runtime.settings, runtime.models, name=self.name, sessions=runtime.sessions
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="in-process-consumer")

    async def _run(self) -> None:
        while True:
            try:
                await self.consumer.start()
                await self.consumer.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the in-process consumer failed; restarting")
                with contextlib.suppress(Exception):
                    await self.consumer.stop()
                await asyncio.sleep(RESTART_DELAY_S)
                self.consumer = self._new()

    def status(self) -> dict[str, Any]:
        return self.consumer.status()

    async def stop(self) -> None:
        await self.consumer.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start_in_process(
    runtime: Runtime, enrichment: Enrichment
) -> EmbeddedPipeline | InProcessConsumer | None:
    settings = runtime.settings
    if enrichment == "off" or not settings.pipeline.enabled:
        return None
    if not settings.kafka.bootstrap_servers:
        assert isinstance(runtime.bus, InMemoryEventBus)
        embedded = EmbeddedPipeline(
            settings,
            runtime.sessions,
            runtime.models,
            bus=runtime.bus,
            on_written=runtime.relay.notify,
            catch_up=settings.pipeline.catch_up_on_start,
        )
        embedded.start()
        return embedded
    if enrichment == "all":
        consumer = InProcessConsumer(runtime)
        consumer.start()
        return consumer
    return None
