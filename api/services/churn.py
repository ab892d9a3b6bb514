"""A customer's churn risk from their support history in the database.

Signals (the last 30 days, at the time of the request):
- contacts: conversations the customer wrote in (one thread of ten messages is one contact);
- negative share: of the customer's latest inbound messages (at most `MAX_ANALYZED`), the
  share the sentiment model reads as negative, among those it labels;
- SLA breaches: first-response and resolution targets of the customer's tickets that fell
  due in the window and were missed (answered late, or not at all yet);
- open tickets: the customer's tickets not solved or closed (any age);
- recency: days since the customer's latest inbound message (None: never wrote).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from api.services.common import check_owned
from core.db.types import utcnow
from core.domain.conversations import Conversation, Message
from core.domain.customers import Customer
from core.domain.enums import Direction, TicketStatus
from core.domain.tickets import Ticket
from models.service import AnalyzeRequest, ChurnScore, ModelService, SupportSignalsIn

WINDOW = timedelta(days=30)
MAX_ANALYZED = 20


@dataclass(frozen=True)
class CustomerChurn:
    score: ChurnScore
    signals: SupportSignalsIn
    notes: tuple[str, ...]


def _inbound_of(tenant_id: uuid.UUID, customer_id: uuid.UUID) -> list[ColumnElement[bool]]:
    return [
        Message.tenant_id == tenant_id,
        Message.direction == Direction.INBOUND,
        Message.conversation_id.in_(
            select(Conversation.id).where(
                Conversation.tenant_id == tenant_id, Conversation.customer_id == customer_id
            )
        ),
    ]


Moment = InstrumentedAttribute[datetime | None]


def _missed(due: Moment, done: Moment, since: datetime, now: datetime) -> ColumnElement[bool]:
    """A target that fell due in [since, now) and was met late or not at all."""
    return and_(due >= since, due < now, or_(done.is_(None), done > due))


async def _sla_breaches(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    since: datetime,
    now: datetime,
) -> int:
    mine = (Ticket.tenant_id == tenant_id, Ticket.requester_id == customer_id)
    total = 0
    for due, done in (
        (Ticket.first_response_due_at, Ticket.first_responded_at),
        (Ticket.resolution_due_at, Ticket.solved_at),
    ):
        count = await session.scalar(
            select(func.count(Ticket.id)).where(*mine, _missed(due, done, since, now))
        )
        total += int(count or 0)
    return total


async def customer_churn(
    session: AsyncSession,
    models: ModelService,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    now: datetime | None = None,
) -> CustomerChurn:
    await check_owned(session, Customer, customer_id, tenant_id, what="customer")
    now = now or utcnow()
    since = now - WINDOW
    inbound = _inbound_of(tenant_id, customer_id)
    recent = (*inbound, Message.created_at >= since)
    contacts = await session.scalar(
        select(func.count(func.distinct(Message.conversation_id))).where(*recent)
    )
    last = await session.scalar(select(func.max(Message.created_at)).where(*inbound))
    texts = list(
        (
            await session.scalars(
                select(Message.text)
                .where(*recent, Message.text != "")
                .order_by(Message.id.desc())
                .limit(MAX_ANALYZED)
            )
        ).all()
    )
    open_tickets = await session.scalar(
        select(func.count(Ticket.id)).where(
            Ticket.tenant_id == tenant_id,
            Ticket.requester_id == customer_id,
            Ticket.status.not_in([TicketStatus.SOLVED, TicketStatus.CLOSED]),
        )
    )
    breaches = await _sla_breaches(session, tenant_id, customer_id, since, now)
    await session.close()  # the sentiment model may take a while: give the connection back
    share, notes = await _negative_share(models, texts)
    signals = SupportSignalsIn(
        contacts_30d=int(contacts or 0),
        negative_share=share,
        sla_breaches_30d=breaches,
        open_tickets=int(open_tickets or 0),
        days_since_last_contact=(
            None if last is None else round(max((now - last).total_seconds(), 0) / 86400, 2)
        ),
    )
    return CustomerChurn(await models.churn(signals), signals, notes)


async def _negative_share(models: ModelService, texts: list[str]) -> tuple[float, tuple[str, ...]]:
    if not texts:
        return 0.0, ()
    analyses = await models.analyze([AnalyzeRequest(text=t) for t in texts])
    labels = [a.sentiment.label for a in analyses]
    labelled = [label for label in labels if label is not None]
    notes: list[str] = []
    if not labelled:
        reasons = sorted({a.sentiment.reason or "" for a in analyses})
        notes.append(
            "No message could be read for sentiment ("
            + "; ".join(r for r in reasons if r)
            + "): the negative share counts as 0."
        )
        return 0.0, tuple(notes)
    if len(labelled) < len(labels):
        notes.append(
            f"{len(labels) - len(labelled)} of {len(labels)} messages had no confident "
            "sentiment and were left out of the negative share."
        )
    share = sum(label == "negative" for label in labelled) / len(labelled)
    return round(share, 4), tuple(notes)
