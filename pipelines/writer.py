"""The one transaction that records a batch of analyses and what they change.

In one transaction: the `message_analyses` rows (`INSERT ... ON CONFLICT (message_id,
model_version) DO NOTHING`), and for the messages analyzed for the first time only, their
effects: the conversation's insight folded in message order, an `intent:<label>` tag on the
conversation and its open tickets, the suggestion on the tickets (`custom_fields["ai"]`,
with a `ticket.updated` event), and `message.analyzed` in the outbox. A redelivered message
finds its row and changes nothing, so the consumer may commit its offsets after this
returns and never before."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import core.db.models  # noqa: F401 - every table, so foreign keys resolve in a bare worker
from core.db.engine import dialect_name
from core.db.types import utcnow, uuid7
from core.domain.analyses import ConversationInsight, MessageAnalysis
from core.domain.conversations import Conversation, Message
from core.domain.enums import TicketStatus
from core.domain.tickets import Ticket, ticket_conversations
from core.events.store import EventContext, EventRecorder
from core.events.types import DomainEvent
from pipelines.items import Enriched, WorkItem, analysis_row
from pipelines.signals import Insight, fold, intent_tag

MAX_TAGS = 50
ACTOR = "enrichment"
_INSIGHT_FIELDS = tuple(Insight.__dataclass_fields__)


@dataclass
class WriteResult:
    written: list[Enriched] = field(default_factory=list)  # new rows, effects applied
    duplicates: int = 0  # already recorded (a redelivery, a duplicate publish)
    missing: list[WorkItem] = field(default_factory=list)  # no such message (deleted)
    # When each written message was stored, and when this transaction committed (epoch s).
    message_created: dict[uuid.UUID, datetime] = field(default_factory=dict)
    committed_at: float = 0.0


async def write_batch(
    sessions: async_sessionmaker[AsyncSession],
    batch: list[Enriched],
    *,
    source: str = "pipeline",
    effects: bool = True,
) -> WriteResult:
    """Record `batch` (in the order its messages were received) in one transaction.
    `effects=False` (replay) writes the analysis rows only."""
    result = WriteResult()
    if not batch:
        return result
    async with sessions() as session, session.begin():
        present = await _known(session, batch, result)
        if present:
            inserted = await _insert_rows(session, present, source)
            fresh = [e for e in present if (e.item.message_id, e.model_version) in inserted]
            result.duplicates += len(present) - len(fresh)
            if effects and fresh:
                first_time = await _first_analyses(session, fresh)
                await _apply_effects(session, [e for e in fresh if e.item.message_id in first_time])
            result.written = fresh
    result.committed_at = time.time()
    return result


async def _known(
    session: AsyncSession, batch: list[Enriched], result: WriteResult
) -> list[Enriched]:
    """The batch's messages that exist (in the tenant the event named), once each, with the
    conversation they are in now (a merge moves messages)."""
    ids = list({e.item.message_id for e in batch})
    rows = (
        await session.execute(
            select(
                Message.id, Message.tenant_id, Message.conversation_id, Message.created_at
            ).where(Message.id.in_(ids))
        )
    ).all()
    known = {row.id: row for row in rows}
    present: list[Enriched] = []
    seen: set[tuple[uuid.UUID, str]] = set()
    for enriched in batch:
        row = known.get(enriched.item.message_id)
        if row is None or row.tenant_id != enriched.item.tenant_id:
            result.missing.append(enriched.item)
            continue
        key = (enriched.item.message_id, enriched.model_version)
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        result.message_created[row.id] = row.created_at
        item = replace(enriched.item, conversation_id=row.conversation_id)
        present.append(replace(enriched, item=item))
    return present


async def _insert_rows(
    session: AsyncSession, batch: list[Enriched], source: str
) -> set[tuple[uuid.UUID, str]]:
    table = cast(Table, MessageAnalysis.__table__)
    now = utcnow()
    values = [{"id": uuid7(), "created_at": now, **analysis_row(e, source=source)} for e in batch]
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    statement = (
        insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=["message_id", "model_version"])
        .returning(table.c.message_id, table.c.model_version)
    )
    return {(row.message_id, row.model_version) for row in await session.execute(statement)}


async def _first_analyses(session: AsyncSession, fresh: list[Enriched]) -> set[uuid.UUID]:
    """Messages with no earlier pipeline row: a message redelivered across a model swap
    gets the new row, but its effects were applied the first time."""
    ids = [e.item.message_id for e in fresh]
    versions = {e.item.message_id: e.model_version for e in fresh}
    earlier = (
        await session.execute(
            select(MessageAnalysis.message_id, MessageAnalysis.model_version).where(
                MessageAnalysis.message_id.in_(ids), MessageAnalysis.source == "pipeline"
            )
        )
    ).all()
    again = {row.message_id for row in earlier if row.model_version != versions[row.message_id]}
    return set(ids) - again


async def _apply_effects(session: AsyncSession, batch: list[Enriched]) -> None:
    if not batch:
        return
    conversation_ids = sorted({e.item.conversation_id for e in batch})
    lock = (
        select(Conversation).where(Conversation.id.in_(conversation_ids)).order_by(Conversation.id)
    )
    if dialect_name(session) == "postgresql":
        # The inbound path locks the conversation the same way before appending events:
        # versions of the conversation's events stay in order.
        lock = lock.with_for_update()
    conversations = {c.id: c for c in (await session.scalars(lock)).all()}
    rows = await _insight_rows(session, conversation_ids)
    insights = {
        cid: Insight(**{name: getattr(row, name) for name in _INSIGHT_FIELDS})
        for cid, row in rows.items()
    }
    recorder = EventRecorder(session, EventContext(actor_type="system", actor_id=ACTOR))
    await recorder.preload_versions("conversation", list(conversations))
    tags: dict[uuid.UUID, list[str]] = defaultdict(list)
    now = utcnow()
    for enriched in batch:
        item, analysis = enriched.item, enriched.analysis
        conversation = conversations.get(item.conversation_id)
        if conversation is None:
            continue
        state = insights.get(item.conversation_id, Insight())
        state = fold(
            state,
            analysis,
            inbound=item.inbound,
            message_id=item.message_id,
            model_version=enriched.model_version,
        )
        insights[item.conversation_id] = state
        tag = intent_tag(analysis) if item.inbound else None
        if tag:
            tags[conversation.id].append(tag)
            if tag not in conversation.tags and len(conversation.tags) < MAX_TAGS:
                conversation.tags = [*conversation.tags, tag]
                conversation.updated_at = now
        await recorder.record(
            DomainEvent.MESSAGE_ANALYZED,
            tenant_id=item.tenant_id,
            aggregate_type="conversation",
            aggregate_id=conversation.id,
            payload=_analyzed_payload(enriched, state),
            correlation_id=item.correlation_id,
            causation_id=item.event_id,
        )
    await _save_insights(session, conversations, rows, insights, now)
    await _update_tickets(session, recorder, insights, tags)


def _analyzed_payload(enriched: Enriched, state: Insight) -> dict[str, Any]:
    a = enriched.analysis
    return {
        "message_id": str(enriched.item.message_id),
        "conversation_id": str(enriched.item.conversation_id),
        "model_version": enriched.model_version,
        "language": a.language.code,
        "intent": a.intent.label,
        "sentiment": a.sentiment.label,
        "urgency": a.urgency.label,
        "suggested_priority": state.suggested_priority,
        "sentiment_trend": state.sentiment_trend,
    }


async def _insight_rows(
    session: AsyncSession, ids: list[uuid.UUID]
) -> dict[uuid.UUID, ConversationInsight]:
    query = select(ConversationInsight).where(ConversationInsight.conversation_id.in_(ids))
    return {row.conversation_id: row for row in (await session.scalars(query)).all()}


async def _save_insights(
    session: AsyncSession,
    conversations: dict[uuid.UUID, Conversation],
    rows: dict[uuid.UUID, ConversationInsight],
    insights: dict[uuid.UUID, Insight],
    now: datetime,
) -> None:
    for conversation_id, state in insights.items():
        values = {name: getattr(state, name) for name in _INSIGHT_FIELDS}
        row = rows.get(conversation_id)
        if row is None:
            session.add(
                ConversationInsight(
                    conversation_id=conversation_id,
                    tenant_id=conversations[conversation_id].tenant_id,
                    updated_at=now,
                    **values,
                )
            )
        else:
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = now
    await session.flush()


async def _update_tickets(
    session: AsyncSession,
    recorder: EventRecorder,
    insights: dict[uuid.UUID, Insight],
    tags: dict[uuid.UUID, list[str]],
) -> None:
    """Open tickets linked to the conversations get the suggestion and the intent tags.
    The ORM update carries the ticket's version: an agent's concurrent edit makes this
    transaction fail and the batch is written again."""
    link = ticket_conversations.c
    rows = (
        await session.execute(
            select(Ticket, link.conversation_id)
            .join(ticket_conversations, link.ticket_id == Ticket.id)
            .where(
                link.conversation_id.in_(list(insights)),
                Ticket.status.not_in([TicketStatus.SOLVED.value, TicketStatus.CLOSED.value]),
            )
            .order_by(Ticket.id)
        )
    ).all()
    for ticket, conversation_id in rows:
        state = insights[conversation_id]
        suggestion = {
            "suggested_priority": state.suggested_priority,
            "sentiment_trend": state.sentiment_trend,
            "language": state.language,
            "intent": state.intent,
        }
        new_tags = list(dict.fromkeys([*ticket.tags, *tags.get(conversation_id, [])]))
        new_tags = new_tags[: max(MAX_TAGS, len(ticket.tags))]
        if ticket.custom_fields.get("ai") == suggestion and new_tags == ticket.tags:
            continue
        ticket.tags = new_tags
        ticket.custom_fields = {**ticket.custom_fields, "ai": suggestion}
        await recorder.record(
            DomainEvent.TICKET_UPDATED,
            tenant_id=ticket.tenant_id,
            aggregate_type="ticket",
            aggregate_id=ticket.id,
            payload={
                "number": ticket.number,
                "tags": new_tags,
                "custom_fields": {"ai": suggestion},
            },
        )
    await session.flush()
