"""A scoring run from input to output: read, score on Ray, write, summarize."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from core.settings import Settings
from pipelines.scoring.columns import ROW, score_schema
from pipelines.scoring.job import default_workers, ensure_ray, score_texts
from pipelines.scoring.models import ModelChoice, resolve_models
from pipelines.scoring.readers import InputError, InputTable, RowError, format_of, read_input
from pipelines.scoring.writers import write_errors, write_output


@dataclass(frozen=True)
class ScoreOptions:
    tasks: tuple[str, ...]
    batch_size: int = 64
    workers: int | None = None  # default: one per CPU of the Ray cluster
    address: str | None = None  # default: the settings', else a local Ray
    models_dir: Path | None = None  # default: the settings'
    prefix: str = ""  # before every score column's name
    progress: bool = True


@dataclass
class ScoreSummary:
    output: Path
    read: int  # rows in the input, good and bad
    scored: int
    errors: list[RowError] = field(default_factory=list)
    errors_file: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)
    workers: int = 0
    seconds: float = 0.0  # the scoring job, actors' start included

    @property
    def malformed(self) -> int:
        return len(self.errors)

    @property
    def rows_per_s(self) -> float:
        return self.scored / self.seconds if self.seconds else 0.0


def score_file(
    settings: Settings,
    source: Path,
    text_col: str,
    output: Path,
    options: ScoreOptions,
    *,
    channel_col: str | None = None,
) -> ScoreSummary:
    """Score `text_col` of a CSV, JSONL or Parquet file into `output` (format by extension);
    `channel_col` names a column with each message's channel (whatsapp, email, ...), an
    urgency feature. Raises InputError when the file cannot be scored at all (no such
    column, unknown format)."""
    format_of(output)  # refuse an unknown output format before any work
    table = read_input(source, text_col)
    if channel_col and channel_col not in table.columns:
        raise InputError(f"{source.name} has no column {channel_col!r} (--channel-col)")
    return score_table(settings, table, text_col, output, options, channel_col=channel_col)


def score_database(
    settings: Settings, since: datetime, tenant: str | None, output: Path, options: ScoreOptions
) -> ScoreSummary:
    """Score the messages stored since `since` (of one tenant, or all) into `output`."""
    from pipelines.scoring.db import TEXT_COLUMN, read_messages

    format_of(output)
    table = asyncio.run(read_messages(settings, since, tenant))
    return score_table(settings, table, TEXT_COLUMN, output, options, channel_col="channel")


def score_table(
    settings: Settings,
    table: InputTable,
    text_col: str,
    output: Path,
    options: ScoreOptions,
    *,
    channel_col: str | None = None,
) -> ScoreSummary:
    _refuse_clashes(table, options)
    choice = resolve_models(settings, options.tasks, options.models_dir)
    summary = ScoreSummary(output, len(table.rows) + len(table.errors), len(table.rows))
    summary.errors, summary.versions = table.errors, dict(choice.versions)
    texts = [str(row[text_col]) for row in table.rows]
    channels = [_channel(row.get(channel_col)) for row in table.rows] if channel_col else None
    started = time.perf_counter()
    if texts:
        ensure_ray(settings, options.address)
        # an actor needs a whole CPU: more than the cluster has would wait forever
        summary.workers = min(options.workers or default_workers(), default_workers())
        scores = _score(texts, channels, choice, options, summary.workers)
    else:
        scores = score_schema(choice.tasks).empty_table()
    summary.seconds = time.perf_counter() - started
    if options.prefix:
        scores = scores.rename_columns(
            [n if n == ROW else options.prefix + n for n in scores.column_names]
        )
    write_output(output, table, scores)
    summary.errors_file = write_errors(output, table.errors)
    return summary


def _score(
    texts: list[str],
    channels: list[str | None] | None,
    choice: ModelChoice,
    options: ScoreOptions,
    workers: int,
) -> pa.Table:
    with tqdm(total=len(texts), unit="row", desc="scoring", disable=not options.progress) as bar:
        return score_texts(
            texts,
            choice,
            channels=channels,
            batch_size=options.batch_size,
            workers=workers,
            progress=bar.update,
        )


def _channel(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _refuse_clashes(table: InputTable, options: ScoreOptions) -> None:
    produced = {options.prefix + n for n in score_schema(options.tasks).names if n != ROW}
    clash = sorted(produced & set(table.columns))
    if clash:
        raise InputError(
            f"the input already has column(s) {', '.join(clash)}, which scoring writes; "
            "pass --prefix (e.g. --prefix score_) to name the new columns apart"
        )
