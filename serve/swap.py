"""Hot swap: new head versions reach the running Enricher replicas without a restart.

`push_model_versions` rewrites the Enricher's `user_config` in the running app's config and
applies it through the Serve controller (`serve.declarative`); Serve calls `reconfigure` on
every replica in place, each builds the new set off the request path and swaps it in. The
call returns when every replica has taken the new config, with what each now serves, or the
reason it kept the old heads.

    result = push_model_versions(settings, {"intent": "4"}, shadow={"sentiment": "7"})
    if result is None: ...          # no RelayDesk app on Serve: nothing to update
    elif result.error: ...          # every replica still serves the old heads
    else: result.versions, result.switch_s
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.settings import Settings
from serve.options import EnricherConfig, HeadsStatus

if TYPE_CHECKING:
    from ray.serve._private.client import ServeControllerClient

logger = logging.getLogger(__name__)

POLL_S = 0.02
RELIST_S = 1.0


class SwapError(RuntimeError):
    """The running app cannot be updated in place (deployed with `serve.run`, or the
    replicas did not take the new config in time)."""


@dataclass(frozen=True)
class SwapResult:
    heads: dict[str, str]  # task → version asked for
    shadow: dict[str, str]
    replicas: list[HeadsStatus]  # what each Enricher replica reported after the swap
    switch_s: float  # from applying the config to the last replica reporting it
    errors: dict[str, str] = field(default_factory=dict)  # replica → why it kept the old set
    # from applying the config to the last replica's swap (its clock): the switch itself
    applied_s: float | None = None

    @property
    def error(self) -> str | None:
        return "; ".join(sorted(set(self.errors.values()))) or None

    def __str__(self) -> str:
        n = len(self.replicas)
        where = f"{n} Enricher replica{'s' if n != 1 else ''}"
        if self.error:
            return f"{where} kept the heads they served: {self.error}"
        served = ", ".join(f"{t} {v}" for t, v in sorted(self.versions.items()))
        shadow = ", ".join(f"{t} {v}" for t, v in sorted(self.replicas[0].shadow.items()))
        tail = f"; shadow: {shadow}" if shadow else ""
        return f"{where} now serve {served}{tail} (switched in {self.switch_s:.2f} s)"

    @property
    def versions(self) -> dict[str, str]:
        """Task → version label served (the first replica's; all agree when `error` is None)."""
        return dict(self.replicas[0].versions) if self.replicas else {}


def champion_versions(settings: Settings) -> dict[str, str]:
    """Task → registry version of each head's champion (none before a first version is
    registered: the bundle's heads serve)."""
    from models.head_set import HEAD_TASKS
    from models.registry import ModelRegistry

    embedded = settings.data_dir / "mlflow" / "mlflow.db"
    if not settings.mlflow.tracking_uri and not embedded.exists():
        return {}  # the embedded store is created by the first training run: nothing yet
    registry = ModelRegistry.from_settings(settings)
    return {task: ref.version for task, ref in registry.champions(HEAD_TASKS).items()}


@contextmanager
def ray_connection(settings: Settings) -> Iterator[bool]:
    """This process's Ray session, or one joined for the block: `RELAYDESK_RAY_ADDRESS`,
    else the local Ray that `relaydesk up` started for this data dir (never just any Ray
    on the machine); False when there is none."""
    import ray

    from serve.runner import ray_address_file, ray_env

    if ray.is_initialized():
        yield True
        return
    address = settings.ray.address
    if not address:
        recorded = ray_address_file(settings)
        address = recorded.read_text().strip() if recorded.is_file() else ""
    if not address or not _listening(address):
        yield False
        return
    ray_env()
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError:  # `relaydesk up` is gone and left its address behind
        yield False
        return
    try:
        yield True
    finally:
        ray.shutdown()


def _listening(address: str) -> bool:
    """Whether something accepts connections at `host:port` (Ray's client waits for a gone
    cluster for a minute, then aborts the process); a `ray://` or other URL is trusted."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return True
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def push_model_versions(
    settings: Settings,
    heads: Mapping[str, str],
    shadow: Mapping[str, str] | None = None,
    *,
    timeout_s: float = 120.0,
) -> SwapResult | None:
    """Serve the head versions `heads` (task → registry version or alias; a task left out
    serves the bundle's head) and run `shadow` challengers beside them, on every running
    Enricher replica, in place. None when no RelayDesk app runs on Serve. Raises SwapError
    when the app cannot be changed in place, ValueError on an unknown task."""
    wanted = EnricherConfig.model_validate({"heads": dict(heads), "shadow": dict(shadow or {})})
    with ray_connection(settings) as connected:
        if not connected:
            return None
        from serve.declarative import controller

        client = controller()
        if client is None:
            return None
        return _push(client, wanted, timeout_s)


def _push(client: ServeControllerClient, wanted: EnricherConfig, timeout_s: float) -> SwapResult:
    from serve.app import APP_NAME
    from serve.declarative import apply, deployed_config, enricher_config, with_enricher

    details = client.get_serve_details()
    if APP_NAME not in details.get("applications", {}):
        raise SwapError(f"no {APP_NAME} application is running on Serve")
    config = deployed_config(client, APP_NAME, details)
    if config is None:
        raise SwapError(
            f"the {APP_NAME} application was deployed with serve.run, which cannot be updated "
            "in place: deploy it from its config (`relaydesk up`, `serve deploy`)"
        )
    current = enricher_config(config)
    target = current.model_copy(update={"heads": wanted.heads, "shadow": wanted.shadow})
    user_config = target.user_config()
    started, wall = time.perf_counter(), time.time()
    apply(client, with_enricher(config, target), details)
    replicas = wait_for_replicas(client, user_config, timeout_s, _running_replicas(details))
    switch_s = time.perf_counter() - started
    errors = {r.replica: r.error for r in replicas if r.error}
    asked: dict[str, str] = dict(wanted.heads.items())
    shadowed: dict[str, str] = dict(wanted.shadow.items())
    swapped = [r.swapped_at for r in replicas if r.swapped_at is not None and not r.error]
    applied_s = max(swapped) - wall if swapped and not errors else None
    result = SwapResult(asked, shadowed, replicas, switch_s, errors, applied_s)
    if errors:
        logger.warning("hot swap kept the old heads: %s", result.error)
    else:
        logger.info("hot swap to %s in %.3f s", result.versions, switch_s)
    return result


def _running_replicas(details: dict[str, Any]) -> set[str]:
    from serve.app import APP_NAME
    from serve.declarative import ENRICHER

    app = details.get("applications", {}).get(APP_NAME, {})
    deployment = app.get("deployments", {}).get(ENRICHER, {})
    return {r["replica_id"] for r in deployment.get("replicas", []) if r["state"] == "RUNNING"}


def wait_for_replicas(
    client: ServeControllerClient,
    user_config: dict[str, Any],
    timeout_s: float,
    running: set[str] | None = None,
) -> list[HeadsStatus]:
    """Poll the Enricher until every running replica reports having taken `user_config`
    (applied, or refused with its error). A handle call reaches one replica chosen by the
    router, so each round asks several times as many as there are replicas. `running`: the
    replica ids, as the controller listed them (asked again every second)."""
    from ray import serve

    from serve.app import APP_NAME
    from serve.declarative import ENRICHER

    handle = serve.get_deployment_handle(ENRICHER, app_name=APP_NAME)
    deadline = time.monotonic() + timeout_s
    listed = time.monotonic() if running is not None else 0.0
    seen: dict[str, HeadsStatus] = {}
    while True:
        if running is None or time.monotonic() - listed > RELIST_S:
            running, listed = _running_replicas(client.get_serve_details()), time.monotonic()
        asks = [handle.heads_status.remote() for _ in range(max(1, 4 * len(running)))]
        for ask in asks:
            status: HeadsStatus = ask.result(timeout_s=max(1.0, deadline - time.monotonic()))
            if status.requested == user_config and not status.pending:
                seen[status.replica] = status
        if running and running <= set(seen):
            return [seen[r] for r in sorted(running)]
        if time.monotonic() > deadline:
            missing = sorted(running - set(seen))
            raise SwapError(f"replicas {missing} did not take the new heads in {timeout_s} s")
        time.sleep(POLL_S)
