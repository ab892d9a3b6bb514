"""The RelayDesk Serve application, bound in one place.

    Api (FastAPI ingress) ──► Enricher ──► Encoder (@serve.batch)
                         ├──► Retriever ─┘
                         ├──► ChurnScorer
                         └──► ChannelWorkers (one replica: delivery, IMAP, templates)

`build_app` is an application builder: `serve/config.yaml` names it as the import path,
and `relaydesk up` calls it with the same arguments.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application, Deployment

from serve.deployments.channel_workers import ChannelWorkersDeployment
from serve.deployments.churn import ChurnScorerDeployment
from serve.deployments.encoder import EncoderDeployment
from serve.deployments.enricher import EnricherDeployment
from serve.deployments.ingress import ApiIngress
from serve.deployments.retriever import RetrieverDeployment
from serve.options import AppArgs

APP_NAME = "relaydesk"


def _cpus(n: float) -> dict[str, Any]:
    return {"num_cpus": n}


def _deployment(decorated: object) -> Deployment:
    # @serve.deployment returns a Deployment; Ray's stubs leave it typed as the class.
    assert isinstance(decorated, Deployment)
    return decorated


def build_app(args: AppArgs | dict[str, Any] | None = None) -> Application:
    args = AppArgs.model_validate(args or {})
    encoder = (
        _deployment(EncoderDeployment)
        .options(num_replicas=args.encoder_replicas, ray_actor_options=_cpus(args.encoder_cpus))
        .bind(args)
    )
    enricher = (
        _deployment(EnricherDeployment)
        .options(ray_actor_options=_cpus(args.enricher_cpus))
        .bind(encoder, args)
    )
    retriever = (
        _deployment(RetrieverDeployment)
        .options(ray_actor_options=_cpus(args.retriever_cpus))
        .bind(encoder, args)
    )
    churn = (
        _deployment(ChurnScorerDeployment).options(ray_actor_options=_cpus(args.churn_cpus)).bind()
    )
    # Exactly one replica, whatever else scales: it runs the pollers (see its module).
    workers = (
        _deployment(ChannelWorkersDeployment)
        .options(num_replicas=1, ray_actor_options=_cpus(args.workers_cpus))
        .bind(args)
    )
    return (
        _deployment(ApiIngress)
        .options(num_replicas=args.api_replicas, ray_actor_options=_cpus(args.api_cpus))
        .bind(enricher, retriever, churn, workers, args)
    )
