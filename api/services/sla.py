"""SLA due times and breach flags, recomputed on every ticket change and on every read."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.tickets import SlaStatus
from core.db.types import utcnow
from core.domain.enums import TicketStatus
from core.domain.sla import SlaPolicy, due_at
from core.domain.tickets import Ticket


async def policy_for(session: AsyncSession, ticket: Ticket) -> SlaPolicy | None:
    if ticket.sla_policy_id is not None:
        return await session.get(SlaPolicy, ticket.sla_policy_id)
    return await session.scalar(
        select(SlaPolicy)
        .where(SlaPolicy.tenant_id == ticket.tenant_id, SlaPolicy.is_default.is_(True))
        .order_by(SlaPolicy.created_at)
        .limit(1)
    )


def _breached(due: datetime | None, done: datetime | None, now: datetime) -> bool:
    return due is not None and (done or now) > due


def apply_policy(ticket: Ticket, policy: SlaPolicy | None, now: datetime | None = None) -> bool:
    """Set due times and breach flags; True when this change newly breached a target."""
    now = now or utcnow()
    target = policy.targets.get(ticket.priority) if policy is not None else None
    if policy is None or not target:
        ticket.first_response_due_at = ticket.resolution_due_at = None
        ticket.first_response_breached = ticket.resolution_breached = False
        return False
    # The policy in force is pinned on the ticket: a later change of the tenant's default
    # does not move the goalposts of tickets already running.
    ticket.sla_policy_id = policy.id
    start = ticket.created_at or now
    try:
        ticket.first_response_due_at = due_at(
            start, int(target["first_response_minutes"]), policy.business_hours
        )
        ticket.resolution_due_at = due_at(
            start, int(target["resolution_minutes"]), policy.business_hours
        )
    except ValueError:
        # A calendar with no working time ahead (holidays over every open day) sets no
        # due time rather than failing the change that triggered the recomputation.
        ticket.first_response_due_at = ticket.resolution_due_at = None
    was = (ticket.first_response_breached, ticket.resolution_breached)
    ticket.first_response_breached = _breached(
        ticket.first_response_due_at, ticket.first_responded_at, now
    )
    ticket.resolution_breached = _breached(ticket.resolution_due_at, ticket.solved_at, now)
    return (ticket.first_response_breached, ticket.resolution_breached) != was and any(
        (ticket.first_response_breached, ticket.resolution_breached)
    )


class SlaFields(Protocol):
    """What the live SLA view reads: a Ticket, or a row of the ticket list."""

    status: str
    sla_policy_id: uuid.UUID | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_responded_at: datetime | None
    solved_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool


def sla_status(ticket: SlaFields, now: datetime | None = None) -> SlaStatus:
    """The live view: a target can pass between two changes, so breach is judged now."""
    return SlaStatus(**sla_view(ticket, now))


def sla_view(ticket: SlaFields, now: datetime | None = None) -> dict[str, Any]:
    """`sla_status`'s fields as a dict: a page of tickets validates them with the page, in
    pydantic's core (a model per ticket cost more than the page's query)."""
    now = now or utcnow()
    first = ticket.first_response_breached or _breached(
        ticket.first_response_due_at, ticket.first_responded_at, now
    )
    resolution = ticket.resolution_breached or _breached(
        ticket.resolution_due_at, ticket.solved_at, now
    )
    state: Literal["none", "active", "met", "breached"]
    if ticket.first_response_due_at is None and ticket.resolution_due_at is None:
        state = "none"
    elif first or resolution:
        state = "breached"
    elif ticket.status in _DONE:
        state = "met"
    else:
        state = "active"
    return {
        "policy_id": ticket.sla_policy_id,
        "first_response_due_at": ticket.first_response_due_at,
        "resolution_due_at": ticket.resolution_due_at,
        "first_responded_at": ticket.first_responded_at,
        "first_response_breached": first,
        "resolution_breached": resolution,
        "state": state,
    }


_DONE = frozenset({TicketStatus.SOLVED.value, TicketStatus.CLOSED.value})
