"""Typed job configurations, loadable from YAML or JSON (`relaydesk train --config FILE`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

C = TypeVar("C", bound="JobConfig")


class GateConfig(BaseModel):
    """How a candidate must compare with the champion on the same frozen test set."""

    model_config = ConfigDict(extra="forbid")

    # The candidate's primary metric may be at most this much below the champion's.
    metric_tolerance: float = Field(default=0.0, ge=0.0, le=1.0)
    # Its ECE may exceed the champion's by at most this much ...
    max_ece_increase: float = Field(default=0.02, ge=0.0, le=1.0)
    # ... and never this absolute value (None: no absolute bound).
    max_ece: float | None = Field(default=None, ge=0.0, le=1.0)


class JobConfig(BaseModel):
    """What every job takes; each task adds its own fields."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.6)
    # A table (CSV, Parquet, JSONL) replacing the task's default training data.
    data: Path | None = None
    text_column: str = "text"
    # None: the task's own (intent/sentiment/urgency: the task name; category: `label`).
    label_column: str | None = None
    # A deterministic slice (every k-th row) for a quick run; None: every row.
    max_rows: int | None = Field(default=None, ge=10)
    include_feedback: bool = False
    # Encoder kind for tasks that read embeddings; None: the configured one.
    encoder: str | None = None
    datasets_dir: Path | None = None
    # Train on randomly permuted labels: a chance-level baseline (and how the gate is tested).
    shuffle_labels: bool = False
    # Run the gate after registering (no champion yet: the candidate becomes champion).
    promote: bool = True
    gate: GateConfig = GateConfig()


class IntentConfig(JobConfig):
    c_grid: list[float] | None = None


class SentimentConfig(JobConfig):
    c_grid: list[float] | None = None
    # The VADER ground truth (amazon, nyt, movies) beside the support messages.
    include_vader: bool = True
    support_weight: float = Field(default=5.0, gt=0.0)


class UrgencyConfig(JobConfig):
    c_grid: list[float] | None = None
    # The sentiment head whose probabilities urgency reads: the registered champion when there
    # is one, else the bundle's ("champion"); or always the bundle's ("bundle").
    sentiment: Literal["champion", "bundle"] = "champion"


class CategoryJobConfig(JobConfig):
    label_column: str | None = "label"
    # Registered as `relaydesk-category-<slug>`; None: `relaydesk-category`.
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    use_embeddings: bool = True
    folds: int = Field(default=5, ge=2, le=20)
    text_c: float = Field(default=10.0, gt=0.0)
    embed_c: float = Field(default=0.05, gt=0.0)


class ChurnConfig(JobConfig):
    seed: int = 42
    n_splits: int = Field(default=5, ge=2, le=20)
    candidates: list[Literal["logistic", "hgb"]] = ["logistic", "hgb"]


class KbIndexConfig(JobConfig):
    # The test set is the held-out split of the query file; `data` replaces the articles.
    queries: Path | None = None
    lexical_weight: float | None = Field(default=None, ge=0.0)
    max_chars: int | None = Field(default=None, ge=100)
    overlap_chars: int | None = Field(default=None, ge=0)


def load_config(kind: type[C], path: Path | None, **overrides: object) -> C:
    """`kind` from a YAML or JSON file (or defaults), then the non-None `overrides` on top.
    Raises ValueError with the file and every problem in it."""
    raw: dict[str, object] = {}
    if path is not None:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            loaded = yaml.safe_load(text)
        else:
            loaded = json.loads(text)
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        raw = dict(loaded or {})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        where = str(path) if path else "configuration"
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{where}: {problems}") from exc
