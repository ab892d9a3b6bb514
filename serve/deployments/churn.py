"""`ChurnScorer`: a customer's churn risk from their support signals, explained."""

from __future__ import annotations

from ray import serve

from models.churn.scorer import score_churn
from models.service import ChurnScore, SupportSignalsIn


@serve.deployment(name="ChurnScorer", max_ongoing_requests=64)
class ChurnScorerDeployment:
    def score(self, signals: SupportSignalsIn) -> ChurnScore:
        return score_churn(signals)
