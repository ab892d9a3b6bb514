"""Deploying the app from a config through the Serve controller, as `serve deploy` does.

Why not `serve.run(build_app(args))`: an imperative deploy gets a new code version on every
call, so deploying the same app with another `user_config` replaces every replica (seconds
of stall). A config applied through the controller keeps its code version, a hash of the
import path, the builder's args and the runtime env, when only deployment options change;
the controller then calls `reconfigure` on the running replicas instead (Ray's
`ApplicationState.apply_app_config`). `serve deploy` sends the same config through the
dashboard's REST API; here it goes to the controller through the client Ray keeps for this
process, so it works without the dashboard.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve.schema import ApplicationStatus, ServeApplicationSchema, ServeDeploySchema

from serve.app import APP_NAME
from serve.options import AppArgs, EnricherConfig

if TYPE_CHECKING:
    from ray.serve._private.client import ServeControllerClient

IMPORT_PATH = "serve.app:build_app"
ENRICHER = "Enricher"
POLL_S = 0.25


class DeployError(RuntimeError):
    """The application did not reach RUNNING; the message carries Serve's reason."""


def app_config(
    args: AppArgs, enricher: EnricherConfig | None = None, *, route_prefix: str = "/"
) -> dict[str, Any]:
    """The application's config, as `serve/config.yaml` writes it."""
    deployments = []
    if enricher is not None:
        deployments.append({"name": ENRICHER, "user_config": enricher.user_config()})
    return ServeApplicationSchema.model_validate(
        {
            "name": APP_NAME,
            "route_prefix": route_prefix,
            "import_path": IMPORT_PATH,
            "args": args.model_dump(exclude_none=True),
            "deployments": deployments,
        }
    ).model_dump(exclude_unset=True)


def controller() -> ServeControllerClient | None:
    """The Serve controller's client in this Ray session; None when Serve is not running."""
    from ray.serve.context import _get_global_client

    return _get_global_client(raise_if_no_controller_running=False)


def deployed_config(
    client: ServeControllerClient, name: str = APP_NAME, details: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The config `name` was deployed with; None when it is not running or was deployed
    with `serve.run` (nothing to change in place then). `details`: the controller's
    `get_serve_details()`, when the caller has it."""
    details = details or client.get_serve_details()
    app = details.get("applications", {}).get(name)
    if not app or not app.get("deployed_app_config"):
        return None
    config: dict[str, Any] = dict(app["deployed_app_config"])
    return config


def apply(
    client: ServeControllerClient, config: dict[str, Any], details: dict[str, Any] | None = None
) -> None:
    """Apply one application's config, keeping every other config-deployed application
    (the controller deletes those a config leaves out)."""
    details = details or client.get_serve_details()
    others = [
        app["deployed_app_config"]
        for name, app in details.get("applications", {}).items()
        if name != config["name"] and app.get("deployed_app_config")
    ]
    schema = ServeDeploySchema.model_validate(
        {"applications": [*others, config], "target_capacity": details.get("target_capacity")}
    )
    client.deploy_apps(schema)


def enricher_config(config: dict[str, Any]) -> EnricherConfig:
    """The Enricher's `user_config` in an application config."""
    for deployment in config.get("deployments", []):
        if deployment.get("name") == ENRICHER:
            return EnricherConfig.model_validate(deployment.get("user_config") or {})
    return EnricherConfig()


def with_enricher(config: dict[str, Any], enricher: EnricherConfig) -> dict[str, Any]:
    """`config` with the Enricher's `user_config` replaced (nothing else changes, so the
    code version stays and the replicas are reconfigured in place)."""
    deployments = [dict(d) for d in config.get("deployments", [])]
    mine = next((d for d in deployments if d.get("name") == ENRICHER), None)
    if mine is None:
        mine = {"name": ENRICHER}
        deployments.append(mine)
    mine["user_config"] = enricher.user_config()
    return {**config, "deployments": deployments}


def wait_running(name: str = APP_NAME, timeout_s: float = 600.0) -> None:
    """Block until `name` is RUNNING; DeployError if it fails or the time runs out."""
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        app = serve.status().applications.get(name)
        status = app.status if app else None
        if status == ApplicationStatus.RUNNING:
            return
        if status in (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY):
            raise DeployError(f"application {name} is {status}: {app.message if app else ''}")
        time.sleep(POLL_S)
    raise DeployError(f"application {name} not running after {timeout_s:.0f} s ({status})")


def deploy(
    args: AppArgs, enricher: EnricherConfig | None = None, *, timeout_s: float = 600.0
) -> None:
    """Deploy (or update) the app from its config on the running Serve instance and wait
    until it runs. `serve.start` must have been called (it sets the HTTP options)."""
    client = controller()
    if client is None:
        raise DeployError("Serve is not running: call serve.start() first")
    apply(client, app_config(args, enricher))
    wait_running(APP_NAME, timeout_s)
