"""What an analyzed message changes about its conversation: language, intent, the sentiment
trend and a suggested priority. Pure functions, folded over a conversation's messages in
the order they were received.

- The sentiment score is an exponential moving average (weight `SENTIMENT_WEIGHT` on the
  newest message) of P(positive) - P(negative) over the customer's messages; the trend is
  `worsening` / `improving` when one message moves it by more than `TREND_STEP`.
- The suggested priority is the urgency head's label, raised one step when the sentiment
  score is at or below `ANGRY_SCORE` (a customer upset for several messages in a row).
- Agent (outbound) messages are counted but do not move the customer's signals.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from core.domain.enums import Priority
from models.service import Analysis

SENTIMENT_WEIGHT = 0.5
TREND_STEP = 0.15
ANGRY_SCORE = -0.5
_PRIORITIES = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT)


@dataclass(frozen=True)
class Insight:
    language: str | None = None
    intent: str | None = None
    urgency: str | None = None
    sentiment: str | None = None
    sentiment_score: float = 0.0
    sentiment_trend: str = "steady"
    suggested_priority: str = Priority.NORMAL.value
    analyzed_messages: int = 0
    last_message_id: uuid.UUID | None = None
    model_version: str | None = None


def sentiment_score(analysis: Analysis) -> float | None:
    probabilities = analysis.sentiment.probabilities
    if not probabilities:
        return None
    return probabilities.get("positive", 0.0) - probabilities.get("negative", 0.0)


def suggested_priority(urgency: str | None, score: float, current: str) -> str:
    if urgency is None:
        base = Priority(current) if current in _PRIORITIES else Priority.NORMAL
    else:
        base = Priority(urgency) if urgency in _PRIORITIES else Priority.NORMAL
    step = _PRIORITIES.index(base)
    if score <= ANGRY_SCORE:
        step = min(step + 1, len(_PRIORITIES) - 1)
    return _PRIORITIES[step].value


def fold(
    state: Insight,
    analysis: Analysis,
    *,
    inbound: bool,
    message_id: uuid.UUID,
    model_version: str,
) -> Insight:
    """The conversation's insight after one more analyzed message."""
    counted = replace(
        state,
        analyzed_messages=state.analyzed_messages + 1,
        last_message_id=message_id,
        model_version=model_version,
    )
    if not inbound:
        return counted
    score = sentiment_score(analysis)
    if score is None:
        new_score, trend = state.sentiment_score, state.sentiment_trend
    else:
        seen_before = state.sentiment is not None
        new_score = (
            SENTIMENT_WEIGHT * score + (1 - SENTIMENT_WEIGHT) * state.sentiment_score
            if seen_before
            else score
        )
        delta = new_score - state.sentiment_score if seen_before else 0.0
        trend = (
            "worsening" if delta < -TREND_STEP else "improving" if delta > TREND_STEP else "steady"
        )
    urgency = analysis.urgency.label or state.urgency
    return replace(
        counted,
        language=analysis.language.code or state.language,
        intent=analysis.intent.label or state.intent,
        urgency=urgency,
        # The last confident label; "uncertain" until the head is confident once.
        sentiment=analysis.sentiment.label or state.sentiment or ("uncertain" if score else None),
        sentiment_score=round(new_score, 4),
        sentiment_trend=trend,
        suggested_priority=suggested_priority(
            analysis.urgency.label, new_score, state.suggested_priority
        ),
    )


def intent_tag(analysis: Analysis) -> str | None:
    """The tag an inbound message's intent puts on its conversation and tickets."""
    return f"intent:{analysis.intent.label}" if analysis.intent.label else None
