"""The shape every training job has: train on the pool, score a saved model on a test set."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from training.jobs.config import JobConfig
from training.jobs.context import JobContext

if TYPE_CHECKING:
    from training.feedback import FeedbackExample

_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


def metric_name(text: str) -> str:
    """`text` made safe for an MLflow metric name."""
    return _METRIC_NAME.sub("_", text)


@dataclass(frozen=True)
class Evaluation:
    """A saved model's figures on one test set. `metrics` is flat (`accuracy`, `macro_f1`,
    `ece`, `precision.<label>`, ...); `truth`/`predicted` feed the confusion matrix."""

    metrics: dict[str, float]
    labels: list[str] = field(default_factory=list)
    truth: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def classification_evaluation(
    truth: Sequence[str], probabilities: np.ndarray[Any, Any], labels: Sequence[str]
) -> Evaluation:
    """`models.heads.evaluate.classification_metrics` (the model card's figures), flattened."""
    from models.heads.evaluate import classification_metrics

    if unknown := sorted(set(truth) - set(labels)):
        raise ValueError(f"the test set has labels the model does not know: {unknown}")
    m = classification_metrics(list(truth), probabilities, list(labels))
    flat = {k: float(m[k]) for k in ("accuracy", "macro_f1", "ece")}
    for label, pc in m["per_class"].items():
        flat[f"precision.{metric_name(label)}"] = float(pc["precision"])
        flat[f"recall.{metric_name(label)}"] = float(pc["recall"])
    predicted = [labels[i] for i in np.asarray(probabilities).argmax(axis=1)]
    return Evaluation(flat, list(labels), list(truth), predicted, {"per_class": m["per_class"]})


@dataclass
class Trained:
    """What a job hands the runner to log and register."""

    folder: Path  # the saved model (registered as the pyfunc's `model` artifact)
    test_set: pd.DataFrame  # the frozen test rows, as `evaluate` reads them
    evaluation: Evaluation  # of the new model on `test_set`
    data_sha256: str
    rows: dict[str, int]  # rows per split: train, validation, test (and feedback)
    validation: dict[str, float]  # figures on the validation part (inside the trainer)
    params: dict[str, Any]
    python_model: Any
    signature: Any
    input_example: Any
    uses_encoder: bool = True
    notes: list[str] = field(default_factory=list)


class Job(Protocol):
    task: ClassVar[str]
    config_type: ClassVar[type[JobConfig]]
    primary_metric: ClassVar[str]
    description: ClassVar[str]

    def train(
        self,
        config: Any,
        ctx: JobContext,
        workdir: Path,
        feedback: Sequence[FeedbackExample],
    ) -> Trained: ...

    def evaluate(self, folder: Path, test_set: pd.DataFrame, ctx: JobContext) -> Evaluation: ...


def shuffled(labels: Sequence[str], seed: int) -> list[str]:
    """`labels` in a random order (fixed seed): training on these gives a chance-level model."""
    rng = np.random.default_rng(seed)
    return [labels[i] for i in rng.permutation(len(labels))]
