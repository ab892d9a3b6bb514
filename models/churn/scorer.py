"""The churn answer of the model service: the support-signal score as port dataclasses.

The score is `models.churn.support.score_support` (hand-set, explainable; its module doc
says why the Telco model cannot score RelayDesk customers). Every factor comes back with
its log-odds contribution, largest first, and the top ones in plain words.
"""

from __future__ import annotations

from models.churn.support import SupportSignals, score_support
from models.service import ChurnFactor, ChurnScore, SupportSignalsIn

# Bump with any change to the weights or transforms in models/churn/support.py.
CHURN_MODEL_VERSION = "support-signals-1"


def score_churn(signals: SupportSignalsIn) -> ChurnScore:
    """Churn probability, band and explained factors of one customer's support signals.

    Raises ValueError for impossible signals (negative counts, a share outside [0, 1])."""
    inner = SupportSignals(
        contacts_30d=signals.contacts_30d,
        negative_share=float(signals.negative_share),
        sla_breaches_30d=signals.sla_breaches_30d,
        open_tickets=signals.open_tickets,
        days_since_last_contact=signals.days_since_last_contact,
    )
    result = score_support(inner)
    return ChurnScore(
        probability=round(result.score, 4),
        band=result.band,
        factors=tuple(
            ChurnFactor(
                name=f.name,
                value=None if f.value is None else float(f.value),
                contribution=round(f.contribution, 4),
            )
            for f in result.factors
        ),
        model_version=CHURN_MODEL_VERSION,
        explanation=tuple(result.explanation),
    )
