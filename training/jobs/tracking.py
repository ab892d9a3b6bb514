"""What every run logs to MLflow beside the model: parameters, the data fingerprint, metrics,
the confusion matrix, the frozen test set and the model card."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from training.jobs.base import Evaluation, Trained, metric_name

TEST_SET_DIR = "test_set"
TEST_SET_FILE = "test_set.jsonl"
CARD_FILE = "model_card.md"
CONFUSION_FILE = "confusion_matrix.png"


def flat_params(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    """Nested settings as `a.b` → text (MLflow params are strings of at most 6000 chars)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(f"{name}.", value))
        else:
            out[name] = str(value)[:6000]
    return out


def test_set_sha256(test_set: pd.DataFrame) -> str:
    from training.jobs.data import frame_sha256

    return frame_sha256(test_set)


def log_test_set(test_set: pd.DataFrame) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / TEST_SET_FILE
        test_set.to_json(path, orient="records", lines=True, force_ascii=False)
        mlflow.log_artifact(str(path), TEST_SET_DIR)


def load_test_set(run_id: str, tracking_uri: str) -> pd.DataFrame:
    """The frozen test rows a run logged."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=f"{TEST_SET_DIR}/{TEST_SET_FILE}",
            dst_path=tmp,
            tracking_uri=tracking_uri,
        )
        return pd.read_json(path, lines=True, dtype=False)


def confusion_png(evaluation: Evaluation, path: Path, title: str) -> Path | None:
    """The confusion matrix (rows: truth, columns: prediction) as a PNG; None when the task
    has no labels (the knowledge index)."""
    if not evaluation.labels:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display in jobs
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5.0, 0.45 * len(evaluation.labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ConfusionMatrixDisplay.from_predictions(
            evaluation.truth,
            evaluation.predicted,
            labels=evaluation.labels,
            ax=ax,
            xticks_rotation="vertical",
            colorbar=False,
        )
        ax.set_title(title)
        # long category names: let the saved image grow around them
        fig.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def render_card(
    *,
    name: str,
    description: str,
    trained: Trained,
    primary: str,
    encoder: str | None,
    config: dict[str, Any],
) -> str:
    m = trained.evaluation.metrics
    headline = ["accuracy", "macro_f1", "ece", "roc_auc", "brier", "recall_at_1", "recall_at_3"]
    headline += ["recall_at_5", "mrr"]
    lines = [
        f"# {name}",
        "",
        f"{description}.",
        "",
        f"- Encoder: {encoder or 'none'}",
        f"- Data sha256: `{trained.data_sha256}`",
        f"- Rows: {', '.join(f'{k} {v}' for k, v in trained.rows.items())}",
        f"- Primary metric (the gate): `{primary}` on the frozen test set",
        "",
        "## Test set",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {m[k]:.4f} |" for k in headline if k in m),
    ]
    per_class = trained.evaluation.details.get("per_class")
    if per_class:
        lines += ["", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for label, c in per_class.items():
            lines.append(
                f"| {label} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |"
                f" {c['support']} |"
            )
    if trained.validation:
        lines += ["", "## Validation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in trained.validation.items()]
    lines += ["", "## Configuration", "", "```json", json.dumps(config, indent=2, default=str)]
    lines += ["```"]
    if trained.notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in trained.notes)]
    return "\n".join(lines) + "\n"


def log_run(trained: Trained, config: dict[str, Any], card: str, title: str) -> None:
    """Everything but the model, into the active run."""
    import mlflow

    mlflow.log_params(flat_params("", config))
    mlflow.log_params(flat_params("model.", trained.params))
    mlflow.log_params(
        {"data.sha256": trained.data_sha256}
        | {f"data.rows_{k}": str(v) for k, v in trained.rows.items()}
    )
    mlflow.set_tags({"data.sha256": trained.data_sha256})
    metrics = {f"test_{metric_name(k)}": v for k, v in trained.evaluation.metrics.items()}
    metrics |= {f"val_{metric_name(k)}": v for k, v in trained.validation.items()}
    metrics |= {f"rows_{k}": float(v) for k, v in trained.rows.items()}
    mlflow.log_metrics(metrics)
    log_test_set(trained.test_set)
    mlflow.log_text(card, CARD_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        png = confusion_png(trained.evaluation, Path(tmp) / CONFUSION_FILE, title)
        if png is not None:
            mlflow.log_artifact(str(png))
