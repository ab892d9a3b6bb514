"""Churn risk: a Telco-trained tabular model and a transparent score from support signals.

`score_support` is light (standard library only); the Telco model's names load scikit-learn
and pandas on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.churn.scorer import CHURN_MODEL_VERSION, score_churn
from models.churn.support import (
    DEFAULT_WEIGHTS,
    ChurnScore,
    Factor,
    SupportSignals,
    SupportWeights,
    score_support,
)

if TYPE_CHECKING:
    from models.churn.telco import TelcoChurnModel, TelcoMetrics, train_telco

__all__ = [
    "CHURN_MODEL_VERSION",
    "DEFAULT_WEIGHTS",
    "ChurnScore",
    "Factor",
    "SupportSignals",
    "SupportWeights",
    "TelcoChurnModel",
    "TelcoMetrics",
    "score_churn",
    "score_support",
    "train_telco",
]

_TELCO = {"TelcoChurnModel", "TelcoMetrics", "train_telco"}


def __getattr__(name: str) -> Any:
    if name in _TELCO:
        from models.churn import telco

        return getattr(telco, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
