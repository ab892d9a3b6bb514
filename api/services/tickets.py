"""Tickets: numbering, the status life cycle, optimistic locking, SLA and history."""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    exists,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from api.errors import BadRequest, Conflict, NotFound
from api.schemas.tickets import BulkChanges, TicketCreate, TicketPublic, TicketUpdate
from core.db.engine import dialect_name
from core.db.types import utcnow, uuid7
from core.domain.conversations import Conversation, Message
from core.domain.customers import Customer
from core.domain.enums import TICKET_TRANSITIONS, TicketStatus
from core.domain.sla import SlaPolicy
from core.domain.tenancy import Team, Tenant, User
from core.domain.tickets import Ticket, ticket_conversations
from core.events.store import EventRecord, EventRecorder
from core.events.types import DomainEvent

from . import feedback, sla
from .common import (
    check_owned,
    get_owned,
    id_list,
    keyset,
    list_filter,
    list_params,
)
from .search import ticket_text_match


class IllegalTransition(Conflict):
    code = "illegal_transition"


def check_transition(ticket: Ticket, target: TicketStatus) -> None:
    current = TicketStatus(ticket.status)
    if target == current:
        return
    allowed = TICKET_TRANSITIONS[current]
    if target not in allowed:
        raise IllegalTransition(
            f"a {current.value} ticket cannot become {target.value}",
            details={"from": current.value, "to": target.value, "allowed": sorted(allowed)},
        )


def _set_status(ticket: Ticket, target: TicketStatus, now: datetime) -> None:
    ticket.status = target.value
    if target is TicketStatus.SOLVED:
        ticket.solved_at = now
    elif target is TicketStatus.CLOSED:
        ticket.closed_at = now
    else:
        ticket.solved_at = None


_tenants = cast(Table, Tenant.__table__)


@functools.lru_cache(maxsize=64)
def _numbered_insert(dialect: str, columns: tuple[str, ...]) -> tuple[Update, Insert]:
    """The statements that number and insert a ticket: the tenant's counter row is
    incremented (and so locked until commit, which is what makes numbers distinct and
    gapless) and its old value is the ticket's number. On PostgreSQL they are one
    statement, the counter's UPDATE a CTE of the INSERT: one round trip less with the
    lock held."""
    t = _tenants.c
    take = (
        update(_tenants)
        .where(t.id == bindparam("counter_of"))
        .values(next_ticket_number=t.next_ticket_number + 1)
        .returning((t.next_ticket_number - 1).label("number"))
    )
    # Prefixed: an execution parameter named like a column of `tenants` would also be SET.
    values = [bindparam(f"new_{c}", type_=_tickets.c[c].type) for c in columns]
    if dialect != "postgresql":
        given = {c: v for c, v in zip(columns, values, strict=True)}
        given["number"] = bindparam("new_number", type_=_tickets.c.number.type)
        return take, insert(_tickets).values(given)
    taken = take.cte("next_number")
    row = select(*values, taken.c.number)
    numbered = insert(_tickets).from_select([*columns, "number"], row)
    return take, numbered.returning(_tickets.c.number)


async def _insert_numbered(session: AsyncSession, ticket: Ticket) -> None:
    """INSERT the (transient) ticket with the tenant's next number. Called with everything
    else read and computed, so the tenant row stays locked only for what follows: the
    links, the events and the commit."""
    state = inspect(ticket).dict
    values = {a.key: state[a.key] for a in inspect(Ticket).column_attrs if a.key in state}
    values.pop("number", None)
    dialect = dialect_name(session)
    take, insert_ticket = _numbered_insert(dialect, tuple(values))
    params = {f"new_{name}": value for name, value in values.items()}
    params["counter_of"] = ticket.tenant_id
    if dialect == "postgresql":
        number = await session.scalar(insert_ticket, params)
    else:
        number = await session.scalar(take, params)
        await session.execute(insert_ticket, {**params, "new_number": number})
    assert number is not None
    ticket.number = int(number)


async def _check_refs(session: AsyncSession, tenant_id: uuid.UUID, fields: dict[str, Any]) -> None:
    refs = {
        "assignee_id": (User, "assignee"),
        "team_id": (Team, "team"),
        "requester_id": (Customer, "requester"),
        "sla_policy_id": (SlaPolicy, "SLA policy"),
    }
    for name, (model, what) in refs.items():
        if fields.get(name) is None:
            continue
        if model is SlaPolicy:  # read again right after (policy_for): keep it in the session
            await get_owned(session, model, fields[name], tenant_id, what=what)
        else:
            await check_owned(session, model, fields[name], tenant_id, what=what)


async def _record(
    recorder: EventRecorder,
    ticket: Ticket,
    event: DomainEvent,
    payload: dict[str, Any],
    *,
    first: bool = False,
) -> None:
    await recorder.record(
        event,
        tenant_id=ticket.tenant_id,
        aggregate_type="ticket",
        aggregate_id=ticket.id,
        payload={"number": ticket.number, **payload},
        first=first,
    )


async def _apply_sla(session: AsyncSession, recorder: EventRecorder, ticket: Ticket) -> None:
    if sla.apply_policy(ticket, await sla.policy_for(session, ticket)):
        await _record(
            recorder,
            ticket,
            DomainEvent.TICKET_SLA_BREACHED,
            {
                "first_response_breached": ticket.first_response_breached,
                "resolution_breached": ticket.resolution_breached,
            },
        )


async def create_ticket(
    session: AsyncSession, recorder: EventRecorder, tenant_id: uuid.UUID, data: TicketCreate
) -> Ticket:
    fields = data.model_dump(exclude={"conversation_id"})
    fields["tags"] = list(dict.fromkeys(fields["tags"]))  # as updates do
    await _check_refs(session, tenant_id, fields)
    conversation = None
    if data.conversation_id is not None:
        conversation = await get_owned(
            session, Conversation, data.conversation_id, tenant_id, what="conversation"
        )
        fields["requester_id"] = fields["requester_id"] or conversation.customer_id
        if not data.subject:
            first = await session.scalar(
                select(Message.text)
                .where(Message.conversation_id == conversation.id)
                .order_by(Message.id)
                .limit(1)
            )
            fields["subject"] = (conversation.subject or first or "Conversation")[:500]
    if not fields.get("subject"):
        raise BadRequest("a ticket needs a subject or a conversation_id", code="subject_required")
    if data.status in (TicketStatus.SOLVED, TicketStatus.CLOSED):
        raise BadRequest("a ticket starts unsolved", code="invalid_initial_status")
    now = utcnow()
    ticket = Ticket(
        id=uuid7(), tenant_id=tenant_id, version=1, created_at=now, updated_at=now, **fields
    )
    if conversation is not None:
        ticket.first_responded_at = conversation.first_reply_at
    sla.apply_policy(ticket, await sla.policy_for(session, ticket), now)
    # Everything is read and computed: the number is taken last (see _insert_numbered).
    await _insert_numbered(session, ticket)
    await _record(
        recorder,
        ticket,
        DomainEvent.TICKET_CREATED,
        {"subject": ticket.subject, "status": ticket.status, "priority": ticket.priority},
        first=True,
    )
    if conversation is not None:
        await _link(session, recorder, ticket, conversation)
    await session.commit()
    return ticket


async def _link(
    session: AsyncSession, recorder: EventRecorder, ticket: Ticket, conversation: Conversation
) -> None:
    await session.execute(
        ticket_conversations.insert().values(ticket_id=ticket.id, conversation_id=conversation.id)
    )
    await _record(
        recorder,
        ticket,
        DomainEvent.TICKET_CONVERSATION_LINKED,
        {"conversation_id": str(conversation.id)},
    )


async def link_conversation(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    ticket_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> Ticket:
    ticket = await get_owned(session, Ticket, ticket_id, tenant_id, what="ticket")
    conversation = await get_owned(
        session, Conversation, conversation_id, tenant_id, what="conversation"
    )
    linked = await session.scalar(
        select(
            exists().where(
                ticket_conversations.c.ticket_id == ticket.id,
                ticket_conversations.c.conversation_id == conversation.id,
            )
        )
    )
    if not linked:
        ticket.updated_at = utcnow()
        if conversation.first_reply_at and ticket.first_responded_at is None:
            ticket.first_responded_at = conversation.first_reply_at
        await session.flush()
        await _link(session, recorder, ticket, conversation)
        await _apply_sla(session, recorder, ticket)
        await _commit(session)
    return ticket


def _diff(ticket: Ticket, changes: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (getattr(ticket, k), v) for k, v in changes.items() if getattr(ticket, k) != v}


async def _apply_changes(
    session: AsyncSession, recorder: EventRecorder, ticket: Ticket, changes: dict[str, Any]
) -> None:
    """Validate and apply field changes, then append one event per kind of change."""
    if "status" in changes and changes["status"] is not None:
        check_transition(ticket, TicketStatus(changes["status"]))
    diff = _diff(ticket, changes)
    if not diff:
        return
    now = utcnow()
    for name, (_, new) in diff.items():
        if name == "status":
            _set_status(ticket, TicketStatus(new), now)
        else:
            setattr(ticket, name, new)
    ticket.updated_at = now
    await session.flush()
    await feedback.from_ticket_change(session, recorder, ticket, diff)
    if "status" in diff:
        old, new = diff.pop("status")
        await _record(recorder, ticket, DomainEvent.TICKET_STATUS_CHANGED, {"from": old, "to": new})
    assignment = {k: diff.pop(k) for k in ("assignee_id", "team_id") if k in diff}
    if assignment:
        await _record(
            recorder,
            ticket,
            DomainEvent.TICKET_ASSIGNED,
            {k: str(v[1]) if v[1] else None for k, v in assignment.items()},
        )
    if diff:
        await _record(
            recorder,
            ticket,
            DomainEvent.TICKET_UPDATED,
            {k: _jsonable(v[1]) for k, v in diff.items()},
        )
    await _apply_sla(session, recorder, ticket)


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


async def _commit(session: AsyncSession) -> None:
    try:
        await session.commit()
    except StaleDataError as exc:
        await session.rollback()
        raise Conflict(
            "the ticket was changed by someone else; reload it and retry",
            code="version_conflict",
        ) from exc


async def update_ticket(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    ticket_id: uuid.UUID,
    data: TicketUpdate,
) -> Ticket:
    ticket = await get_owned(session, Ticket, ticket_id, tenant_id, what="ticket")
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    for required in ("subject", "status", "priority", "type", "tags", "custom_fields"):
        if required in changes and changes[required] is None:
            raise BadRequest(f"{required} cannot be null", code="null_not_allowed")
    if data.version is not None and data.version != ticket.version:
        raise Conflict(
            f"version {data.version} is stale; the ticket is at version {ticket.version}",
            code="version_conflict",
            details={"current_version": ticket.version},
        )
    await _check_refs(session, tenant_id, changes)
    if "tags" in changes:
        changes["tags"] = list(dict.fromkeys(changes["tags"]))
    try:
        await _apply_changes(session, recorder, ticket, changes)
        await _commit(session)
    except StaleDataError as exc:
        await session.rollback()
        raise Conflict("the ticket was changed concurrently", code="version_conflict") from exc
    return ticket


async def bulk_update(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    ids: list[uuid.UUID],
    changes: BulkChanges,
) -> list[dict[str, Any]]:
    """Apply one change set to many tickets in a single transaction. Each ticket runs in a
    savepoint, so one illegal transition fails that ticket alone and is reported by id."""
    base = changes.model_dump(exclude_unset=True, exclude={"add_tags", "remove_tags"})
    for required in ("status", "priority", "type"):
        if required in base and base[required] is None:
            raise BadRequest(f"{required} cannot be null", code="null_not_allowed")
    await _check_refs(session, tenant_id, base)
    unique_ids = list(dict.fromkeys(ids))
    found = {
        t.id: t
        for t in (
            await session.scalars(
                select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.id.in_(unique_ids))
            )
        ).all()
    }
    results: list[dict[str, Any]] = []
    for ticket_id in unique_ids:
        ticket = found.get(ticket_id)
        if ticket is None:
            results.append(_failed(ticket_id, "not_found", f"ticket {ticket_id} not found"))
            continue
        fields = dict(base)
        if changes.add_tags or changes.remove_tags:
            tags = [t for t in ticket.tags if t not in changes.remove_tags]
            fields["tags"] = list(dict.fromkeys(tags + list(changes.add_tags)))
        try:
            async with session.begin_nested():
                await _apply_changes(session, recorder, ticket, fields)
        except Conflict as exc:
            results.append(_failed(ticket_id, exc.code, exc.message, exc.details))
            continue
        results.append({"id": ticket_id, "ok": True, "version": ticket.version})
    await _commit(session)
    return results


def _failed(ticket_id: uuid.UUID, code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "id": ticket_id,
        "ok": False,
        "error": {"code": code, "message": message, "details": details},
    }


_tickets = cast(Table, Ticket.__table__)
_conversations = cast(Table, Conversation.__table__)
_links = ticket_conversations.c
# TicketPublic's own columns and what its `sla` view is computed from.
_PUBLIC = tuple(name for name in TicketPublic.model_fields if name in _tickets.c)
_SLA = (
    "status",
    "sla_policy_id",
    "first_response_due_at",
    "resolution_due_at",
    "first_responded_at",
    "solved_at",
    "first_response_breached",
    "resolution_breached",
)
_ROW_COLUMNS = tuple(_tickets.c[name] for name in dict.fromkeys(_PUBLIC + _SLA))


_EQUALS = ("priority", "assignee_id", "team_id", "requester_id")


@functools.lru_cache(maxsize=512)
def _list_statement(dialect: str, names: tuple[str, ...]) -> Select[Any]:
    """The list and search statement for one combination of filters, with bound
    parameters: built and compiled once (see conversations.py)."""
    c = _tickets.c
    links = id_list(
        dialect,
        select(_links.conversation_id)
        .where(_links.ticket_id == c.id)
        .order_by(_links.conversation_id)
        .correlate(_tickets),
    )
    query = select(*_ROW_COLUMNS, links.label("conversation_ids")).where(
        c.tenant_id == bindparam("tenant_id")
    )
    for name in names:
        if name == "channel_id":  # tickets reach a channel through their conversations
            query = query.where(
                exists()
                .where(_links.ticket_id == c.id)
                .where(_links.conversation_id == _conversations.c.id)
                .where(_conversations.c.channel_id == bindparam("channel_id"))
            )
        elif (
            cond := list_filter(name, c, dialect, _EQUALS, ticket_text_match(dialect))
        ) is not None:
            query = query.where(cond)
    return keyset(query, c.id, "after" in names)


def ticket_query(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    status: list[TicketStatus] | None = None,
    priority: str | None = None,
    assignee_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    requester_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    tag: str | None = None,
    updated_since: datetime | None = None,
    q: str | None = None,
    cursor: str | None = None,
) -> tuple[Select[Any], dict[str, Any]]:
    """The list and search statement (the columns TicketPublic needs and each ticket's
    linked conversation ids, newest first, `limit` rows) and its parameters."""
    dialect = dialect_name(session)
    params = list_params(
        dialect,
        status=status,
        q=q,
        cursor=cursor,
        priority=priority,
        assignee_id=assignee_id,
        team_id=team_id,
        requester_id=requester_id,
        channel_id=channel_id,
        tag=tag,
        updated_since=updated_since,
    )
    statement = _list_statement(dialect, tuple(params))
    params["tenant_id"] = tenant_id
    return statement, params


def rows_to_public(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of `ticket_query` (as `fetch_page` gives them) as TicketPublic's fields, with
    the SLA judged now."""
    now = utcnow()
    for row in rows:
        row["sla"] = sla.sla_view(SimpleNamespace(**row), now)
    return rows


async def to_public(session: AsyncSession, tickets: list[Ticket]) -> list[TicketPublic]:
    links: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if tickets:
        rows = await session.execute(
            select(_links.ticket_id, _links.conversation_id)
            .where(_links.ticket_id.in_([t.id for t in tickets]))
            .order_by(_links.ticket_id, _links.conversation_id)
        )
        for ticket_id, conversation_id in rows:
            links[ticket_id].append(conversation_id)
    now = utcnow()
    return [public(t, links[t.id], now) for t in tickets]


def public(
    ticket: Ticket, conversation_ids: list[uuid.UUID], now: datetime | None = None
) -> TicketPublic:
    """A ticket whose links are known (`to_public` reads them)."""
    return TicketPublic.model_validate(
        {
            **{c: getattr(ticket, c) for c in TicketPublic.model_fields if hasattr(ticket, c)},
            "conversation_ids": conversation_ids,
            "sla": sla.sla_status(ticket, now),
        }
    )


async def ticket_events(
    session: AsyncSession, tenant_id: uuid.UUID, ticket_id: uuid.UUID
) -> list[EventRecord]:
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None or ticket.tenant_id != tenant_id:
        raise NotFound(f"ticket {ticket_id} not found")
    rows = await session.scalars(
        select(EventRecord)
        .where(EventRecord.aggregate_type == "ticket", EventRecord.aggregate_id == ticket_id)
        .order_by(EventRecord.aggregate_version)
    )
    return list(rows.all())


async def record_first_response(
    session: AsyncSession, recorder: EventRecorder, conversation_id: uuid.UUID, at: datetime
) -> None:
    """An agent's first reply on a conversation answers every open ticket linked to it."""
    tickets = (
        await session.scalars(
            select(Ticket)
            .join(ticket_conversations, ticket_conversations.c.ticket_id == Ticket.id)
            .where(
                ticket_conversations.c.conversation_id == conversation_id,
                Ticket.first_responded_at.is_(None),
            )
        )
    ).all()
    for ticket in tickets:
        ticket.first_responded_at = at
        ticket.updated_at = at
        await session.flush()
        await _apply_sla(session, recorder, ticket)
