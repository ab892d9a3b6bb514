"""`relaydesk score`: batch scoring of a file or of stored messages with the champion models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pipelines.scoring.run import ScoreSummary

SHOWN_ERRORS = 5


def score_command(
    output: Annotated[
        Path, typer.Option(help="Where to write: .csv, .jsonl or .parquet (by extension).")
    ],
    input: Annotated[
        Path | None, typer.Option("--input", help="A .csv, .jsonl or .parquet file to score.")
    ] = None,
    text_col: Annotated[str, typer.Option(help="The column holding each message's text.")] = (
        "text"
    ),
    tasks: Annotated[
        str | None,
        typer.Option(help="Comma-separated: intent,sentiment,urgency,language,entities (all)."),
    ] = None,
    from_db: Annotated[
        bool, typer.Option("--from-db", help="Score messages stored in the database.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="With --from-db: ISO 8601 time, or an age such as 6h, 7d."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option(help="With --from-db: tenant slug or id; default all.")
    ] = None,
    channel_col: Annotated[
        str | None,
        typer.Option(help="A column with each message's channel (whatsapp, email, ...)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Rows per encoder pass.")] = 64,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Scoring actors, one CPU each (default: all CPUs).")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="A Ray cluster to run on (default RELAYDESK_RAY_ADDRESS, else local)."),
    ] = None,
    models_dir: Annotated[
        Path | None, typer.Option(help="Built models (default: the data dir's).")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Put before every new column's name.")] = "",
) -> None:
    """Score a file, or messages stored since a time, with the champion models on Ray Data.

    The output keeps every input column and adds, per task, the prediction, its
    probability, all probabilities (JSON), the abstention reason and the model version.
    Rows that cannot be scored are counted, listed by line and written to
    <output>.errors.jsonl."""
    from pipelines.cli import parse_since
    from pipelines.scoring.models import ModelsUnavailableError, parse_tasks
    from pipelines.scoring.readers import InputError
    from pipelines.scoring.run import ScoreOptions, score_database, score_file

    try:
        chosen = parse_tasks(tasks)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tasks") from exc
    if from_db == (input is not None):
        _fail("give either --input FILE or --from-db --since TIME")
    if from_db and not since:
        _fail("--from-db needs --since (an ISO 8601 time, or an age such as 7d)")
    options = ScoreOptions(chosen, batch_size, workers, address, models_dir, prefix)
    from core.cli.main import load_settings

    settings = load_settings()
    try:
        if input is not None:
            summary = score_file(
                settings, input, text_col, output, options, channel_col=channel_col
            )
        else:
            summary = score_database(settings, parse_since(str(since)), tenant, output, options)
    except InputError as exc:
        _fail(str(exc))
    except ModelsUnavailableError as exc:
        typer.secho(f"error: models unavailable: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    for line in summary_lines(summary):
        typer.echo(line)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def summary_lines(summary: ScoreSummary) -> list[str]:
    lines = [
        f"scored {summary.scored:,} of {summary.read:,} rows in {summary.seconds:.1f} s: "
        f"{summary.rows_per_s:,.1f} rows/s ({summary.workers} workers)",
        f"output: {summary.output}",
    ]
    if summary.versions:
        lines.append("models: " + ", ".join(f"{t}={v}" for t, v in summary.versions.items()))
    if summary.errors:
        lines.append(f"malformed: {summary.malformed:,} rows, not scored:")
        lines += [f"  {e.where()}: {e.reason}" for e in summary.errors[:SHOWN_ERRORS]]
        if summary.malformed > SHOWN_ERRORS:
            lines.append(f"  … {summary.malformed - SHOWN_ERRORS:,} more")
        lines.append(f"  all of them in {summary.errors_file}")
    return lines
