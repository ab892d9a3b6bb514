"""Tickets: create, update with transition and version checks, search, bulk, history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from api.deps import Agent, RecorderDep, SessionDep, SettingsDep, Viewer
from api.schemas.common import Page
from api.schemas.tickets import (
    EventPublic,
    TicketBulkResult,
    TicketBulkUpdate,
    TicketCreate,
    TicketLink,
    TicketPublic,
    TicketUpdate,
)
from api.services import tickets
from api.services.common import fetch_page, get_owned
from core.domain.enums import Priority, TicketStatus
from core.domain.tickets import Ticket
from core.events.store import EventRecord

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])


@router.get("", response_model=Page[TicketPublic])
async def list_tickets(
    session: SessionDep,
    principal: Viewer,
    settings: SettingsDep,
    status: Annotated[list[TicketStatus] | None, Query()] = None,
    priority: Priority | None = None,
    assignee_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    requester_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    updated_since: AwareDatetime | None = None,
    q: Annotated[
        str | None, Query(max_length=500, description="full text of subject and messages")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> dict[str, object]:
    """List and search tickets, newest first, with a stable cursor."""
    statement, params = tickets.ticket_query(
        session,
        principal.tenant_id,
        status=status,
        priority=priority,
        assignee_id=assignee_id,
        team_id=team_id,
        requester_id=requester_id,
        channel_id=channel_id,
        tag=tag,
        updated_since=updated_since,
        q=q,
        cursor=cursor,
    )
    rows, next_cursor = await fetch_page(
        session, statement, params, limit or settings.api.page_size_default
    )
    return {"items": tickets.rows_to_public(rows), "next_cursor": next_cursor}


@router.post("", response_model=TicketPublic, status_code=status.HTTP_201_CREATED)
async def create_ticket(
    body: TicketCreate, session: SessionDep, recorder: RecorderDep, principal: Agent
) -> TicketPublic:
    """Create a ticket, standalone or from a conversation (`conversation_id`)."""
    ticket = await tickets.create_ticket(session, recorder, principal.tenant_id, body)
    return tickets.public(ticket, [body.conversation_id] if body.conversation_id else [])


@router.post("/bulk", response_model=TicketBulkResult)
async def bulk_update(
    body: TicketBulkUpdate, session: SessionDep, recorder: RecorderDep, principal: Agent
) -> TicketBulkResult:
    """Apply one change to up to 1,000 tickets in one transaction; results per id."""
    results = await tickets.bulk_update(
        session, recorder, principal.tenant_id, body.ids, body.changes
    )
    ok = sum(1 for r in results if r["ok"])
    return TicketBulkResult.model_validate(
        {"updated": ok, "failed": len(results) - ok, "results": results}
    )


@router.get("/{ticket_id}", response_model=TicketPublic)
async def get_ticket(ticket_id: uuid.UUID, session: SessionDep, principal: Viewer) -> TicketPublic:
    """One ticket with its SLA status."""
    ticket = await get_owned(session, Ticket, ticket_id, principal.tenant_id, what="ticket")
    return (await tickets.to_public(session, [ticket]))[0]


@router.patch("/{ticket_id}", response_model=TicketPublic)
async def update_ticket(
    ticket_id: uuid.UUID,
    body: TicketUpdate,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> TicketPublic:
    """Change a ticket. An illegal status move or a stale `version` gets 409."""
    ticket = await tickets.update_ticket(session, recorder, principal.tenant_id, ticket_id, body)
    return (await tickets.to_public(session, [ticket]))[0]


@router.post("/{ticket_id}/conversations", response_model=TicketPublic)
async def link_conversation(
    ticket_id: uuid.UUID,
    body: TicketLink,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> TicketPublic:
    """Link a conversation to the ticket."""
    ticket = await tickets.link_conversation(
        session, recorder, principal.tenant_id, ticket_id, body.conversation_id
    )
    return (await tickets.to_public(session, [ticket]))[0]


@router.get("/{ticket_id}/events", response_model=list[EventPublic])
async def ticket_history(
    ticket_id: uuid.UUID, session: SessionDep, principal: Viewer
) -> list[EventRecord]:
    """The ticket's history from the event store, oldest first."""
    return await tickets.ticket_events(session, principal.tenant_id, ticket_id)
