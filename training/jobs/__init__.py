"""Training jobs, one per task, tracked in MLflow and registered as `relaydesk-<task>`."""

from __future__ import annotations

from training.jobs.base import Evaluation, Job, Trained
from training.jobs.config import (
    CategoryJobConfig,
    ChurnConfig,
    GateConfig,
    IntentConfig,
    JobConfig,
    KbIndexConfig,
    SentimentConfig,
    UrgencyConfig,
    load_config,
)
from training.jobs.data import DataError
from training.jobs.runner import (
    JOBS,
    FeedbackUnavailableError,
    TrainOutcome,
    describe,
    job_for,
    run_training,
)

__all__ = [
    "JOBS",
    "CategoryJobConfig",
    "ChurnConfig",
    "DataError",
    "Evaluation",
    "FeedbackUnavailableError",
    "GateConfig",
    "IntentConfig",
    "Job",
    "JobConfig",
    "KbIndexConfig",
    "SentimentConfig",
    "TrainOutcome",
    "Trained",
    "UrgencyConfig",
    "describe",
    "job_for",
    "load_config",
    "run_training",
]
