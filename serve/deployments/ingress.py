"""`Api`: the ticketing API (the FastAPI app of `api/`) as the Serve ingress deployment."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from api.app import create_app
from core.runtime import Runtime
from serve.client import ServeModels
from serve.options import AppArgs


@serve.deployment(name="Api", max_ongoing_requests=256)
@serve.ingress()
class ApiIngress:
    def __init__(
        self,
        enricher: DeploymentHandle[Any],
        retriever: DeploymentHandle[Any],
        churn: DeploymentHandle[Any],
        args: AppArgs,
    ) -> None:
        self._runtime = Runtime.build(
            args.settings(), models=ServeModels(enricher, retriever, churn)
        )

    def __serve_build_asgi_app__(self) -> Any:
        # Built here, after __init__, because the app needs this replica's runtime. Without
        # Kafka it enriches messages itself; with Kafka the consumer actor pool does.
        return create_app(runtime=self._runtime, enrichment="embedded")

    async def __del__(self) -> None:
        await self._runtime.close()
