"""Run one training job end to end: train, log to MLflow, register, then the gate."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings
from models.registry import (
    HEAD_TASKS,
    TAG_ENCODER,
    TAG_PRIMARY,
    TAG_TEST_SET,
    ModelRef,
    check_task,
    log_and_register,
    registered_name,
)
from training.jobs.base import Evaluation, Job
from training.jobs.category import CategoryJob
from training.jobs.churn import ChurnJob
from training.jobs.config import JobConfig
from training.jobs.context import JobContext, Progress
from training.jobs.heads import IntentJob, SentimentJob, UrgencyJob
from training.jobs.kb_index import KbIndexJob
from training.jobs.tracking import log_run, render_card, test_set_sha256

if TYPE_CHECKING:
    from training.feedback import FeedbackExample
    from training.promotion import Decision

logger = logging.getLogger(__name__)

JOBS: dict[str, Job] = {
    job.task: job
    for job in (IntentJob(), SentimentJob(), UrgencyJob(), CategoryJob(), ChurnJob(), KbIndexJob())
}
FEEDBACK_TASKS = HEAD_TASKS


class FeedbackUnavailableError(RuntimeError):
    """`--include-feedback` was asked for where no feedback can be loaded."""


def job_for(task: str) -> Job:
    """The job that trains `task` (`category-<slug>` → the category job)."""
    check_task(task)
    return JOBS["category" if task.startswith("category") else task]


def task_name(job: Job, config: JobConfig) -> str:
    """The registered task: `category-<slug>` for a named category model."""
    slug = getattr(config, "slug", None)
    return f"{job.task}-{slug}" if slug else job.task


def load_feedback(settings: Settings, task: str) -> list[FeedbackExample]:
    """Agent corrections for `task` (`training.feedback.load_feedback_sync`)."""
    if task not in FEEDBACK_TASKS:
        raise FeedbackUnavailableError(
            f"agent corrections exist for {', '.join(FEEDBACK_TASKS)} only, not {task}"
        )
    try:
        from training.feedback import load_feedback_sync
    except ImportError as exc:
        raise FeedbackUnavailableError(
            "--include-feedback needs the agent-correction store (training/feedback.py), "
            f"which this installation lacks: {exc}"
        ) from exc
    return list(load_feedback_sync(settings, task))


@dataclass(frozen=True)
class TrainOutcome:
    ref: ModelRef
    run_id: str
    evaluation: Evaluation
    rows: dict[str, int]
    decision: Decision | None
    notes: tuple[str, ...] = ()  # what the job left out or assumed (also in the model card)


def run_training(
    task: str,
    config: JobConfig,
    settings: Settings,
    *,
    progress: Progress | None = None,
) -> TrainOutcome:
    """Train `task` with `config`, log the run, register a new version of `relaydesk-<task>`
    and (unless `config.promote` is off) put it through the gate."""
    import mlflow

    from models.pyfunc import share_encoder
    from training.promotion import gate_candidate

    job = job_for(task)
    if not isinstance(config, job.config_type):
        raise TypeError(f"{task} takes a {job.config_type.__name__}")
    name = task_name(job, config)
    report = progress or (lambda _msg: None)
    feedback: Sequence[FeedbackExample] = ()
    if config.include_feedback:
        report("loading agent corrections")
        feedback = load_feedback(settings, job.task)
        report(f"{len(feedback)} agent corrections")
    ctx = JobContext(
        settings,
        encoder_kind=config.encoder or settings.ai.encoder,
        datasets_dir=config.datasets_dir,
        progress=report,
    )
    registry = ctx.registry
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    dumped = config.model_dump(mode="json")
    with (
        tempfile.TemporaryDirectory(prefix="relaydesk-train-") as work,
        mlflow.start_run(experiment_id=registry.experiment_id(name)) as run,
    ):
        mlflow.set_tags({"relaydesk.task": name, "relaydesk.job": job.task})
        trained = job.train(config, ctx, Path(work), feedback)
        encoder = ctx.encoder_label if trained.uses_encoder else None
        card = render_card(
            name=registered_name(name),
            description=job.description,
            trained=trained,
            primary=job.primary_metric,
            encoder=encoder,
            config=dumped,
        )
        report("logging the run")
        log_run(trained, dumped, card, f"{registered_name(name)}: test set")
        if trained.uses_encoder:
            share_encoder(ctx.encoder)  # MLflow's input-example check loads the model here
        report("registering the model")
        tags = {
            TAG_TEST_SET: test_set_sha256(trained.test_set),
            TAG_PRIMARY: job.primary_metric,
            **({TAG_ENCODER: encoder} if encoder else {}),
        }
        ref = log_and_register(
            registry,
            name,
            trained.folder,
            trained.python_model,
            signature=trained.signature,
            input_example=trained.input_example,
            tags=tags,
        )
        decision = None
        if config.promote:
            report("gate")
            decision = gate_candidate(
                name,
                ref,
                ctx,
                config.gate,
                candidate=trained.evaluation,
                test_set=trained.test_set,
            )
    return TrainOutcome(
        ref, run.info.run_id, trained.evaluation, trained.rows, decision, tuple(trained.notes)
    )


def describe(outcome: TrainOutcome) -> list[str]:
    """Lines the CLI prints about a finished run."""
    m = outcome.evaluation.metrics
    keys = [k for k in ("accuracy", "macro_f1", "ece", "roc_auc", "recall_at_3", "mrr") if k in m]
    lines = [
        f"registered {outcome.ref.label} (run {outcome.run_id})",
        "rows: " + ", ".join(f"{k} {v}" for k, v in outcome.rows.items()),
        "test: " + ", ".join(f"{k} {m[k]:.4f}" for k in keys),
        *(f"note: {n}" for n in outcome.notes),
    ]
    if outcome.decision is not None:
        lines.append(outcome.decision.summary())
    return lines
