"""Batch scoring: files or stored messages through the champion models on Ray Data.

    from pipelines.scoring import ScoreOptions, score_file, parse_tasks
    summary = score_file(settings, Path("in.csv"), "text", Path("out.parquet"),
                         ScoreOptions(parse_tasks("intent,sentiment")))

`score_texts` is the Ray Data job alone (texts in, score columns out)."""

from pipelines.scoring.job import ScoreBatch, ensure_ray, score_texts
from pipelines.scoring.models import TASKS, ModelChoice, load_analyzer, parse_tasks, resolve_models
from pipelines.scoring.readers import (
    InputError,
    InputTable,
    MissingColumnError,
    RowError,
    read_input,
)
from pipelines.scoring.run import (
    ScoreOptions,
    ScoreSummary,
    score_database,
    score_file,
    score_table,
)
from pipelines.scoring.writers import errors_path, write_errors, write_output

__all__ = [
    "TASKS",
    "InputError",
    "InputTable",
    "MissingColumnError",
    "ModelChoice",
    "RowError",
    "ScoreBatch",
    "ScoreOptions",
    "ScoreSummary",
    "ensure_ray",
    "errors_path",
    "load_analyzer",
    "parse_tasks",
    "read_input",
    "resolve_models",
    "score_database",
    "score_file",
    "score_table",
    "score_texts",
    "write_errors",
    "write_output",
]
