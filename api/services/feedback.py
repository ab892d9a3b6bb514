"""People's labels for the models' predictions: corrections by hand, and ticket changes that
contradict a prediction. Each one becomes an `analysis_feedback` row (a training example
and a point of the quality report) and an `analysis.corrected` event, in the caller's
transaction.

The tasks that got a correction are left in `session.info[FEEDBACK_TASKS]`: after the
commit, the request's session hands them to the retrain trigger (api/deps.py,
training/retrain.py)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Conflict, Unprocessable
from api.schemas.ai import AnalysisCorrection
from api.schemas.conversations import MessageAnalysisPublic
from api.services.analyses import latest_analyses
from api.services.common import get_owned
from api.services.intents import list_intents
from core.db.types import utcnow
from core.domain.analyses import MessageAnalysis
from core.domain.conversations import Message
from core.domain.enums import Direction
from core.domain.feedback import (
    FEEDBACK_TASKS,
    AnalysisFeedback,
    FeedbackSource,
    FeedbackTask,
)
from core.domain.tickets import Ticket, ticket_conversations
from core.events.store import EventRecorder
from core.events.types import DomainEvent
from models.taxonomy import SENTIMENT_LABELS, URGENCY_LABELS

INTENT_TAG = "intent:"
_FIXED_LABELS: dict[str, tuple[str, ...]] = {
    FeedbackTask.SENTIMENT: SENTIMENT_LABELS,
    FeedbackTask.URGENCY: URGENCY_LABELS,
}


async def enabled_intents(session: AsyncSession, tenant_id: uuid.UUID) -> list[str]:
    return [i.name for i in await list_intents(session, tenant_id) if i.enabled]


async def check_labels(
    session: AsyncSession, tenant_id: uuid.UUID, labels: Mapping[str, str]
) -> None:
    """422 for a label the task's model cannot give in this tenant."""
    for task, label in labels.items():
        if task == FeedbackTask.INTENT:
            allowed = await enabled_intents(session, tenant_id)
            hint = "see GET /v1/intents; a switched-off intent cannot be given either"
        else:
            allowed = list(_FIXED_LABELS[task])
            hint = f"one of {', '.join(allowed)}"
        if label not in allowed:
            raise Unprocessable(
                f"{label!r} is not a {task} label of this tenant: {hint}",
                code="unknown_label",
                details={"task": task, "label": label, "allowed": allowed},
            )


async def _latest_analysis(session: AsyncSession, message_id: uuid.UUID) -> MessageAnalysis | None:
    return await session.scalar(
        select(MessageAnalysis)
        .where(MessageAnalysis.message_id == message_id)
        .order_by(MessageAnalysis.created_at.desc(), MessageAnalysis.id.desc())
        .limit(1)
    )


async def correct_analysis(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    message_id: uuid.UUID,
    correction: AnalysisCorrection,
) -> MessageAnalysisPublic:
    """Record a person's labels for a message's latest analysis; returns the analysis as
    it now reads."""
    message = await get_owned(session, Message, message_id, tenant_id, what="message")
    analysis = await _latest_analysis(session, message_id)
    if analysis is None:
        raise Conflict(
            f"message {message_id} has not been analysed yet: there is no prediction to correct",
            code="not_analyzed",
        )
    if not message.text.strip():
        raise Unprocessable(
            f"message {message_id} has no text: a label for it would teach the models nothing",
            code="no_text",
        )
    labels = correction.labels()
    await check_labels(session, tenant_id, labels)
    await record_feedback(
        session, recorder, message, analysis, labels, FeedbackSource.AGENT_CORRECTION
    )
    await session.commit()
    return (await latest_analyses(session, [message_id]))[message_id]


async def record_feedback(
    session: AsyncSession,
    recorder: EventRecorder,
    message: Message,
    analysis: MessageAnalysis,
    labels: Mapping[str, str],
    source: FeedbackSource,
) -> list[AnalysisFeedback]:
    """Add one row per task and one `analysis.corrected` event; the caller commits."""
    now = utcnow()
    context = recorder.context
    rows = []
    for task, label in labels.items():
        predicted: str | None = getattr(analysis, task)
        rows.append(
            AnalysisFeedback(
                tenant_id=message.tenant_id,
                message_id=message.id,
                conversation_id=message.conversation_id,
                task=task,
                label=label,
                predicted_label=predicted,
                confirmed=predicted == label,
                model_version=analysis.versions.get(task),
                source=source.value,
                actor_type=context.actor_type or "system",
                actor_id=context.actor_id or "",
                text=message.text,
                language=analysis.language,
                created_at=now,
            )
        )
    session.add_all(rows)
    await recorder.record(
        DomainEvent.ANALYSIS_CORRECTED,
        tenant_id=message.tenant_id,
        aggregate_type="message",
        aggregate_id=message.id,
        key=message.conversation_id,
        payload={
            "message_id": str(message.id),
            "conversation_id": str(message.conversation_id),
            "source": source.value,
            "labels": [_event_label(row) for row in rows],
        },
    )
    corrected = {row.task for row in rows if not row.confirmed}
    if corrected:
        session.info.setdefault(FEEDBACK_TASKS, set()).update(corrected)
    return rows


def _event_label(row: AnalysisFeedback) -> dict[str, Any]:
    return {
        "task": row.task,
        "label": row.label,
        "predicted": row.predicted_label,
        "confirmed": row.confirmed,
        "model_version": row.model_version,
    }


async def from_ticket_change(
    session: AsyncSession,
    recorder: EventRecorder,
    ticket: Ticket,
    diff: Mapping[str, tuple[Any, Any]],
) -> None:
    """Feedback from a ticket edit that contradicts what the models suggested:
    - priority moved away from the suggested one: the urgency of the ticket's latest
      analysed customer message was wrong, and the new priority is its label (urgency and
      priority share one scale);
    - exactly one `intent:` tag replaced by another intent of the tenant: the message whose
      intent put the old tag there gets the new one.
    Nothing is recorded where an explicit correction of that message and task exists."""
    if "priority" in diff:
        old_fields = diff.get("custom_fields", (ticket.custom_fields, None))[0] or {}
        suggested = (old_fields.get("ai") or {}).get("suggested_priority")
        new_priority = diff["priority"][1]
        if suggested and new_priority != suggested:
            await _ticket_feedback(
                session, recorder, ticket, FeedbackTask.URGENCY, str(new_priority), None
            )
    if "tags" in diff:
        old, new = (set(tags or ()) for tags in diff["tags"])
        removed = sorted(t[len(INTENT_TAG) :] for t in old - new if t.startswith(INTENT_TAG))
        added = sorted(t[len(INTENT_TAG) :] for t in new - old if t.startswith(INTENT_TAG))
        replaced = len(removed) == 1 and len(added) == 1
        if replaced and added[0] in await enabled_intents(session, ticket.tenant_id):
            await _ticket_feedback(
                session, recorder, ticket, FeedbackTask.INTENT, added[0], removed[0]
            )


async def _ticket_feedback(
    session: AsyncSession,
    recorder: EventRecorder,
    ticket: Ticket,
    task: FeedbackTask,
    label: str,
    predicted: str | None,
) -> None:
    found = await _ticket_message(session, ticket.id, task, predicted)
    if found is None:
        return
    message, analysis = found
    if not message.text.strip() or await _corrected_by_hand(session, message.id, task):
        return
    await record_feedback(
        session, recorder, message, analysis, {task: label}, FeedbackSource.TICKET_CHANGE
    )


async def _ticket_message(
    session: AsyncSession, ticket_id: uuid.UUID, task: FeedbackTask, predicted: str | None
) -> tuple[Message, MessageAnalysis] | None:
    """The latest analysed customer message of the ticket's conversations (with its latest
    analysis), or the latest whose prediction for `task` was `predicted`."""
    link = ticket_conversations.c
    query = (
        select(Message, MessageAnalysis)
        .join(MessageAnalysis, MessageAnalysis.message_id == Message.id)
        .join(ticket_conversations, link.conversation_id == Message.conversation_id)
        .where(link.ticket_id == ticket_id, Message.direction == Direction.INBOUND.value)
        .order_by(
            Message.created_at.desc(),
            Message.id.desc(),
            MessageAnalysis.created_at.desc(),
            MessageAnalysis.id.desc(),
        )
    )
    if predicted is not None:
        query = query.where(getattr(MessageAnalysis, task) == predicted)
    row = (await session.execute(query.limit(1))).first()
    return None if row is None else (row[0], row[1])


async def _corrected_by_hand(session: AsyncSession, message_id: uuid.UUID, task: str) -> bool:
    return bool(
        await session.scalar(
            select(
                exists().where(
                    AnalysisFeedback.message_id == message_id,
                    AnalysisFeedback.task == task,
                    AnalysisFeedback.source == FeedbackSource.AGENT_CORRECTION.value,
                )
            )
        )
    )
