"""Start (or join) Ray, deploy the RelayDesk app on Serve, and shut down cleanly."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings
from serve.options import AppArgs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployed:
    api_url: str
    dashboard_url: str | None
    started_ray: bool


def ray_env() -> None:
    """Keep a local Ray on loopback (it binds the machine's public address otherwise)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def start_ray(settings: Settings, *, dashboard: bool) -> tuple[bool, str | None]:
    """Join `RELAYDESK_RAY_ADDRESS`, or start a local Ray; returns (started, dashboard URL)."""
    import ray

    ray_env()
    if settings.ray.address:
        ctx = ray.init(address=settings.ray.address, logging_level=logging.WARNING)
        started = False
    else:
        ctx = ray.init(
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            logging_level=logging.WARNING,
            # The replicas must see the same configuration as this process.
            runtime_env={"env_vars": _relaydesk_env()},
        )
        started = True
    url = getattr(ctx, "dashboard_url", None) or None
    return started, (f"http://{url}" if url and not url.startswith("http") else url)


def ray_address_file(settings: Settings) -> Path:
    """Where `relaydesk up` leaves the address of the local Ray it started, so that other
    commands of this installation (`relaydesk models promote`) reach its Serve app, and
    never another Ray running on the same machine."""
    return settings.data_dir / "ray.address"


def record_ray_address(settings: Settings) -> None:
    import ray

    path = ray_address_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ray.get_runtime_context().gcs_address + "\n")


def _relaydesk_env() -> dict[str, str]:
    prefixes = ("RELAYDESK_", "HF_", "MLFLOW_", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    return {k: v for k, v in os.environ.items() if k.startswith(prefixes)}


def deploy(settings: Settings, host: str, port: int, args: AppArgs) -> str:
    """Deploy the app from its config (`serve.declarative`), serving the registered
    champion heads, so that promotions later reach the replicas in place."""
    from ray import serve

    from serve.declarative import deploy as deploy_config
    from serve.options import EnricherConfig
    from serve.swap import champion_versions

    serve.start(http_options={"host": host, "port": port})
    try:
        heads = champion_versions(settings)
    except Exception as exc:  # no registry yet, or unreadable: the bundle's heads serve
        logger.warning("serving the bundle's heads: cannot read the model registry: %s", exc)
        heads = {}
    deploy_config(args, EnricherConfig.model_validate({"heads": heads}))
    return f"http://{host}:{port}"


def run_until_interrupted(
    settings: Settings,
    host: str,
    port: int,
    *,
    dashboard: bool,
    on_ready: Callable[[Deployed], None],
) -> None:
    """Deploy, report, then block until SIGINT/SIGTERM; always leaves nothing running that
    it started."""
    import ray
    from ray import serve

    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    started = False
    pool: Any = None
    try:
        started, dashboard_url = start_ray(settings, dashboard=dashboard)
        if started:
            record_ray_address(settings)
        args = AppArgs(data_dir=str(settings.data_dir.resolve()))
        api_url = deploy(settings, host, port, args)
        pool = start_pipeline(settings)
        on_ready(Deployed(api_url=api_url, dashboard_url=dashboard_url, started_ray=started))
        stop.wait()
    finally:
        if started:
            ray_address_file(settings).unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pool is not None:
            from pipelines.actors import stop_pool

            stop_pool(pool)
        if ray.is_initialized():
            try:
                if started:
                    serve.shutdown()  # type: ignore[no-untyped-call]
                else:
                    from serve.app import APP_NAME

                    serve.delete(APP_NAME)
            finally:
                ray.shutdown()


def start_pipeline(settings: Settings) -> Any:
    """With Kafka configured, the consumer actor pool on the Serve app's Enricher; without,
    nothing here (the API ingress enriches from its in-process bus)."""
    if not (settings.kafka.bootstrap_servers and settings.pipeline.enabled):
        return None
    from pipelines.actors import ServeEnricher, start_pool
    from serve.app import APP_NAME

    return start_pool(settings, ServeEnricher(app_name=APP_NAME))


def ensure_models(settings: Settings) -> None:
    """Build what the replicas will load (they refuse to build: one builder, not five).

    Cached by content hash: after the first start this only checks the manifests."""
    from tqdm import tqdm

    from models.bundle import load_bundle

    with tqdm(total=1, bar_format="{desc} {elapsed}", desc="models: checking") as bar:
        bundle = load_bundle(
            settings.models_dir,
            settings.ai,
            build_if_missing=True,
            progress=lambda step: bar.set_description(f"models: {step}"),
        )
        bar.set_description(f"models: ready ({bundle.encoder_version})")
        bar.update()
    if bundle.unavailable:
        logger.warning("serving without heads: %s", bundle.unavailable)
