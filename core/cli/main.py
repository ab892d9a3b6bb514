"""The `relaydesk` command."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from core.domain.enums import Role
from core.settings import Settings, get_settings

app = typer.Typer(
    help="RelayDesk: AI-first customer support. Run `relaydesk up` to start.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="People who work in a tenant.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for integrations.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="api-keys")
app.add_typer(demo_app, name="demo")


def _mount_models() -> None:
    from models.cli import app as models_app

    app.add_typer(models_app, name="models", help="Build and inspect RelayDesk's models.")


def _mount_pipeline() -> None:
    from pipelines.cli import app as pipeline_app
    from pipelines.score_cli import score_command

    app.add_typer(pipeline_app, name="pipeline", help="The Kafka enrichment pipeline.")
    app.command("score")(score_command)


_mount_models()
_mount_pipeline()


def _mount_eval() -> None:
    from training.eval.cli import eval_command

    app.command("eval")(eval_command)


_mount_eval()


def _mount_training() -> None:
    from training.cli import mlflow_app, train_command

    app.command("train")(train_command)
    app.add_typer(mlflow_app, name="mlflow")


_mount_training()


def _mount_channels() -> None:
    from core.cli.channels import channels_app

    app.add_typer(channels_app, name="channels")


_mount_channels()

T = TypeVar("T")


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        typer.secho("Configuration error:", fg="red", err=True)
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            typer.secho(f"  {where}: {err['msg']}", err=True)
        raise typer.Exit(2) from exc


def run(make: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run one async job with the process settings; domain errors become clean exits."""
    from api.errors import ApiError

    settings = load_settings()
    try:
        return asyncio.run(make(settings))
    except ApiError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from exc
    except OSError as exc:
        typer.secho(f"error: cannot reach a service: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (PostgreSQL or SQLite)."""
    from core.db.migrate import upgrade

    settings = load_settings()
    upgrade(settings, revision)
    typer.echo(f"database at {revision} ({settings.mode} mode)")


@app.command()
def bootstrap(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    admin_email: Annotated[str, typer.Option(help="First admin's email.")],
    admin_password: Annotated[
        str | None, typer.Option(help="First admin's password (asked if omitted).")
    ] = None,
) -> None:
    """Create a tenant with its first admin, and print an admin API key once."""
    from core.cli.jobs import bootstrap_job

    password = admin_password or getpass.getpass("Admin password: ")
    result = run(lambda s: bootstrap_job(s, tenant, admin_email, password))
    typer.echo(f"tenant:  {result.tenant.name} (slug {result.tenant.slug}, id {result.tenant.id})")
    typer.echo(f"admin:   {result.admin.email}")
    typer.echo(f"API key: {result.api_key}")
    typer.secho("Store the API key now: it is not shown again.", fg="yellow")


@users_app.command("create")
def users_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[Role, typer.Option()] = Role.AGENT,
    password: Annotated[str | None, typer.Option(help="Asked if omitted.")] = None,
) -> None:
    """Create a user in a tenant."""
    from core.cli.jobs import create_user_job

    secret = password or getpass.getpass("Password: ")
    user = run(lambda s: create_user_job(s, tenant, email, name, role, secret))
    typer.echo(f"created {user.role} {user.email} ({user.id})")


@keys_app.command("create")
def api_keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    name: Annotated[str, typer.Option(help="What the key is for.")],
    role: Annotated[Role, typer.Option()] = Role.AGENT,
) -> None:
    """Create an API key and print it once."""
    from core.cli.jobs import create_key_job

    key = run(lambda s: create_key_job(s, tenant, name, role))
    typer.echo(key)
    typer.secho("Store the key now: it is not shown again.", fg="yellow", err=True)


@demo_app.command("seed")
def demo_seed(
    tenant: Annotated[str, typer.Option(help="Demo tenant name.")] = "Demo",
) -> None:
    """Create a realistic demo tenant: agents, teams, channels, customers, multilingual
    conversations and tickets in every status."""
    from core.cli.demo import seed_demo

    summary = run(lambda s: seed_demo(s, tenant))
    for line in summary:
        typer.echo(line)


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool, typer.Option(help="On an empty embedded database, create the demo tenant.")
    ] = True,
    serve: Annotated[
        bool | None,
        typer.Option(
            "--serve/--no-serve",
            help="Run on Ray Serve (the default, RELAYDESK_AI__SERVE), or serve the API "
            "with uvicorn and the models in-process.",
        ),
    ] = None,
    dashboard: Annotated[
        bool, typer.Option(help="Start the Ray dashboard with a local Ray.")
    ] = True,
) -> None:
    """Serve RelayDesk: the API and its models on Ray Serve (a local Ray, or the cluster at
    RELAYDESK_RAY_ADDRESS). Embedded mode migrates its SQLite database and, on first start,
    creates a demo tenant and prints how to sign in. Ctrl-C stops everything it started."""
    from core.cli.jobs import first_start

    settings = load_settings()
    for line in run(lambda s: first_start(s, demo=demo)):
        typer.echo(line)
    if not (settings.ai.serve if serve is None else serve):
        _up_uvicorn(settings, host, port)
        return
    from serve.runner import Deployed, ensure_models, run_until_interrupted

    ensure_models(settings)
    typer.echo("Starting Ray Serve (the first start takes about half a minute) ...")

    def ready(deployed: Deployed) -> None:
        typer.echo(f"RelayDesk API on {deployed.api_url}  (OpenAPI: {deployed.api_url}/docs)")
        if deployed.dashboard_url:
            typer.echo(f"Ray dashboard: {deployed.dashboard_url}")
        typer.echo("Press Ctrl-C to stop.")

    run_until_interrupted(settings, host, port, dashboard=dashboard, on_ready=ready)
    typer.echo("Stopped.")


def _up_uvicorn(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from api.app import create_app

    typer.echo(f"RelayDesk API on http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs)")
    # The message pipeline runs in this process (in-process bus, or one Kafka consumer), and
    # so do the channel workers (reply delivery, IMAP polling, template sync).
    api = create_app(settings, enrichment="all", channel_workers=True)
    uvicorn.run(api, host=host, port=port, log_level="info")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
