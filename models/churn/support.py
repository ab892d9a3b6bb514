"""Per-customer churn risk from RelayDesk's own support signals: a transparent scoring model.

What it is: a logistic score with **hand-set** coefficients, not a trained model. RelayDesk
has no churn outcomes of its own yet, and the Telco data set has no support-interaction
columns (contacts, sentiment, SLA, open tickets), so no coefficient can be learned or
transferred honestly. What is borrowed from the Telco model (`models.churn.telco`, one-hot
logistic fitted on the 4,930 customers) is only the scale of a believable effect:

* its strongest single factor, month-to-month against two-year contract, is 1.56 log-odds;
  so no support signal may add more than about 1.6 log-odds on its own;
* its one support-related factor, no tech support against tech support, is 0.40 log-odds;
  so one "unit" of bad experience (one SLA breach, one open ticket, a few contacts) is worth
  roughly that much.

Each signal goes through a saturating, non-decreasing transform g in [0, 1] and is weighted
by its cap w (its maximum contribution in log-odds):

| signal | g | w |
|---|---|---|
| contacts in the last 30 days, n | 1 - exp(-n / 6) | 1.2 |
| share s of their messages read as negative | s * n / (n + 2) (shrunk: few contacts) | 1.6 |
| SLA breaches in the last 30 days, b | 1 - exp(-b / 2.5) | 1.4 |
| open tickets, o | 1 - exp(-o / 2) | 1.0 |
| days since last contact, d (None: never) | exp(-d / 14) (a fresh problem; fades in weeks) | 0.5 |

score = sigmoid(-3.0 + sum of contributions). A customer with no signals scores 4.7%.
Bands: low below 0.25; medium from 0.25 (about Telco's base churn rate, 26.5%); high from 0.5.
Because every weight is non-negative and every g is monotone, the score never falls when a
risk signal grows (and never rises as the last contact recedes). Refit these numbers once
RelayDesk records real churn outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple

Band = Literal["low", "medium", "high"]
INTERCEPT = -3.0
MEDIUM_FROM = 0.25
HIGH_FROM = 0.5


@dataclass(frozen=True)
class SupportSignals:
    """One customer's support signals, gathered by the caller (no DB access here)."""

    contacts_30d: int
    negative_share: float  # share of the customer's messages in the 30 days read as negative
    sla_breaches_30d: int
    open_tickets: int
    days_since_last_contact: float | None  # None: the customer never contacted support

    def __post_init__(self) -> None:
        for name in ("contacts_30d", "sla_breaches_30d", "open_tickets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, not {value!r}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, not {value}")
        share = self.negative_share
        if not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
            raise ValueError(f"negative_share must be in [0, 1], not {share!r}")
        days = self.days_since_last_contact
        if days is not None and (
            not isinstance(days, int | float) or not math.isfinite(days) or days < 0
        ):
            raise ValueError(f"days_since_last_contact must be >= 0 or None, not {days!r}")


@dataclass(frozen=True)
class SupportWeights:
    """Caps (max log-odds contribution) and scales of the transforms; see the module doc."""

    contacts: float = 1.2
    contacts_scale: float = 6.0
    negative_share: float = 1.6
    negative_prior: float = 2.0
    sla_breaches: float = 1.4
    sla_scale: float = 2.5
    open_tickets: float = 1.0
    open_scale: float = 2.0
    recency: float = 0.5
    recency_days: float = 14.0

    def __post_init__(self) -> None:
        # non-negative weights and positive scales are what make the score monotone
        scales = {"contacts_scale", "sla_scale", "open_scale", "recency_days"}
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0 or (f.name in scales and value == 0):
                raise ValueError(f"weight {f.name} must be finite and >= 0, not {value}")


DEFAULT_WEIGHTS = SupportWeights()


class Factor(NamedTuple):
    name: str  # a SupportSignals field
    value: float | None  # the signal as given (None: never contacted)
    contribution: float  # log-odds added to the intercept, >= 0


@dataclass(frozen=True)
class ChurnScore:
    score: float  # churn probability in [0, 1]
    band: Band
    factors: list[Factor]  # every signal, largest contribution first
    explanation: list[str]  # the top 3 contributing factors in plain words


def _saturate(x: float, scale: float) -> float:
    return 1.0 - math.exp(-x / scale)


def contributions(
    signals: SupportSignals, weights: SupportWeights = DEFAULT_WEIGHTS
) -> list[Factor]:
    """Each signal's log-odds contribution, in SupportSignals field order."""
    n = signals.contacts_30d
    evidence = n / (n + weights.negative_prior) if n + weights.negative_prior > 0 else 0.0
    days = signals.days_since_last_contact
    recency = 0.0 if days is None else math.exp(-days / weights.recency_days)
    return [
        Factor("contacts_30d", n, weights.contacts * _saturate(n, weights.contacts_scale)),
        Factor(
            "negative_share",
            signals.negative_share,
            weights.negative_share * signals.negative_share * evidence,
        ),
        Factor(
            "sla_breaches_30d",
            signals.sla_breaches_30d,
            weights.sla_breaches * _saturate(signals.sla_breaches_30d, weights.sla_scale),
        ),
        Factor(
            "open_tickets",
            signals.open_tickets,
            weights.open_tickets * _saturate(signals.open_tickets, weights.open_scale),
        ),
        Factor("days_since_last_contact", days, weights.recency * recency),
    ]


def _count(n: float, one: str, many: str) -> str:
    return f"{n:g} {one if n == 1 else many}"


def describe(factor: Factor, signals: SupportSignals) -> str:
    """One factor in plain words, with its effect as an odds multiplier."""
    n = signals.contacts_30d
    match factor.name:
        case "contacts_30d":
            what = f"{_count(n, 'support contact', 'support contacts')} in the last 30 days"
        case "negative_share":
            what = (
                f"{signals.negative_share:.0%} of their messages in the last 30 days read as "
                f"negative (over {_count(n, 'contact', 'contacts')})"
            )
        case "sla_breaches_30d":
            breaches = _count(signals.sla_breaches_30d, "SLA breach", "SLA breaches")
            what = f"{breaches} in the last 30 days"
        case "open_tickets":
            what = f"{_count(signals.open_tickets, 'open ticket', 'open tickets')}"
        case _:
            days = signals.days_since_last_contact or 0.0
            ago = _count(round(days), "day", "days") + " ago" if days >= 1 else "today"
            what = f"last contact {ago}"
    odds = math.exp(factor.contribution)
    return f"{what[0].upper()}{what[1:]}: raises the churn odds x{odds:.2f}"


def band_of(score: float) -> Band:
    if score >= HIGH_FROM:
        return "high"
    return "medium" if score >= MEDIUM_FROM else "low"


def score_support(signals: SupportSignals, weights: SupportWeights = DEFAULT_WEIGHTS) -> ChurnScore:
    """The churn risk of one customer from their support signals."""
    factors = sorted(contributions(signals, weights), key=lambda f: (-f.contribution, f.name))
    log_odds = INTERCEPT + sum(f.contribution for f in factors)
    score = 1.0 / (1.0 + math.exp(-log_odds))
    explanation = [describe(f, signals) for f in factors[:3] if f.contribution > 0.005]
    if not explanation:
        explanation = ["No recent support risk signals: baseline risk."]
    return ChurnScore(score=score, band=band_of(score), factors=factors, explanation=explanation)
