"""`relaydesk train <task>` (locally or as a Ray Job) and `relaydesk mlflow ui`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

mlflow_app = typer.Typer(help="The MLflow tracking store.", no_args_is_help=True)

TASKS_HELP = "intent, sentiment, urgency, category, churn or kb-index"
RAY_JOB_POLL_S = 2.0


def train_command(
    task: Annotated[str, typer.Argument(help=f"What to train: {TASKS_HELP}.")],
    config: Annotated[
        Path | None, typer.Option("--config", help="Job settings (YAML or JSON).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Training data: CSV, Parquet or JSONL.")
    ] = None,
    include_feedback: Annotated[
        bool,
        typer.Option("--include-feedback", help="Add agent corrections to the training rows."),
    ] = False,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Submit as a Ray Job to this cluster (http://host:8265)."),
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of --data.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of --data.")] = None,
    slug: Annotated[
        str | None, typer.Option(help="category: registered as relaydesk-category-SLUG.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    max_rows: Annotated[
        int | None, typer.Option(help="Train on a deterministic slice of this many rows.")
    ] = None,
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Register only; skip the gate.")
    ] = False,
) -> None:
    """Train a model, log the run to MLflow, register it as relaydesk-TASK and put it
    through the promotion gate."""
    if address:
        argv = [a for a in sys.argv[1:] if a != "--address" and not a.startswith("--address=")]
        argv = [a for i, a in enumerate(argv) if i == 0 or argv[i - 1] != "--address"]
        raise typer.Exit(submit_ray_job(address, ["relaydesk", *argv]))
    from core.cli.main import load_settings
    from training.jobs import (
        DataError,
        FeedbackUnavailableError,
        describe,
        job_for,
        load_config,
        run_training,
    )

    try:
        job = job_for(task)
        cfg = load_config(
            job.config_type,
            config,
            data=data,
            include_feedback=include_feedback or None,
            text_column=text_column,
            label_column=label_column,
            slug=slug,
            seed=seed,
            max_rows=max_rows,
            promote=False if no_promote else None,
        )
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    settings = load_settings()
    with _progress() as report:
        try:
            outcome = run_training(task, cfg, settings, progress=report)
        except (DataError, FeedbackUnavailableError, ValueError, OSError) as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc
    for line in describe(outcome):
        typer.echo(line)
    if outcome.decision is not None:
        for note in outcome.decision.notes:
            typer.echo(f"  {note}")


class _progress:
    """A tqdm bar whose description follows the job's steps."""

    def __enter__(self) -> Callable[[str], None]:
        from tqdm import tqdm

        self.bar = tqdm(total=None, unit="step", bar_format="{desc} [{elapsed}]")
        self.steps = 0

        def report(message: str) -> None:
            self.bar.set_description_str(message)
            self.bar.update()

        return report

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def submit_ray_job(address: str, entrypoint: list[str], *, wait: bool = True) -> int:
    """Submit `entrypoint` as a Ray Job, follow it, and return its exit status (0 when it
    succeeded). RELAYDESK_* variables travel with it, so it writes to the same stores."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(address)
    env = {k: v for k, v in os.environ.items() if k.startswith(("RELAYDESK_", "MLFLOW_"))}
    job_id = client.submit_job(
        entrypoint=shlex.join(entrypoint), runtime_env={"env_vars": env} if env else None
    )
    typer.echo(f"submitted Ray Job {job_id} to {address}: {shlex.join(entrypoint)}")
    if not wait:
        return 0
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    status = client.get_job_status(job_id)
    while status not in terminal:
        time.sleep(RAY_JOB_POLL_S)
        status = client.get_job_status(job_id)
    typer.echo(client.get_job_logs(job_id))
    typer.echo(f"Ray Job {job_id}: {status.value}")
    return 0 if status == JobStatus.SUCCEEDED else 1


def mlflow_ui_command_line(port: int, host: str) -> tuple[list[str], dict[str, str]]:
    """The `mlflow ui` command on the configured store, and its environment."""
    from core.cli.main import load_settings
    from models.registry import store_locations

    uri, root = store_locations(load_settings())
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", host, "--port", str(port)]
    if root is not None:
        command += ["--default-artifact-root", root]
    env = {
        **os.environ,
        # 2 processes and ~490 MB instead of 10 and 1.2 GB: RelayDesk runs no MLflow jobs
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    return command, env


@mlflow_app.command("ui")
def mlflow_ui(
    port: Annotated[int, typer.Option(help="Port of the UI.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on RelayDesk's tracking store (Ctrl-C stops it)."""
    command, env = mlflow_ui_command_line(port, host)
    typer.echo(
        f"MLflow UI on http://{host}:{port} ({command[command.index('--backend-store-uri') + 1]})"
    )
    try:
        raise typer.Exit(subprocess.call(command, env=env))  # noqa: S603 - our own argv
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
