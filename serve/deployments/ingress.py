"""`Api`: the ticketing API (the FastAPI app of `api/`) as the Serve ingress deployment."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from api.app import create_app
from core.runtime import Runtime
from serve.client import ServeModels
from serve.options import AppArgs

logger = logging.getLogger(__name__)
NUDGE_TIMEOUT_S = 5.0


@serve.deployment(name="Api", max_ongoing_requests=256)
@serve.ingress()
class ApiIngress:
    def __init__(
        self,
        enricher: DeploymentHandle[Any],
        retriever: DeploymentHandle[Any],
        churn: DeploymentHandle[Any],
        workers: DeploymentHandle[Any],
        args: AppArgs,
    ) -> None:
        self._runtime = Runtime.build(
            args.settings(), models=ServeModels(enricher, retriever, churn)
        )
        # The channel workers run in their own deployment (one replica): a stored reply
        # wakes its delivery worker through the handle.
        self._workers = workers
        self._nudges: set[asyncio.Task[None]] = set()
        self._runtime.on_reply_queued = self._reply_queued

    def _reply_queued(self) -> None:
        task = asyncio.get_running_loop().create_task(self._nudge())
        self._nudges.add(task)
        task.add_done_callback(self._nudges.discard)

    async def _nudge(self) -> None:
        try:
            await asyncio.wait_for(self._call_nudge(), NUDGE_TIMEOUT_S)
        except Exception as exc:  # the worker's next poll sends the reply anyway
            logger.warning("could not wake the delivery worker: %r", exc)

    async def _call_nudge(self) -> None:
        await self._workers.nudge.remote()

    def __serve_build_asgi_app__(self) -> Any:
        # Built here, after __init__, because the app needs this replica's runtime. Without
        # Kafka it enriches messages itself; with Kafka the consumer actor pool does. The
        # channel workers are the ChannelWorkers deployment's.
        return create_app(runtime=self._runtime, enrichment="embedded", channel_workers=False)

    async def __del__(self) -> None:
        await self._runtime.close()
