"""Conversations: the agent's inbox."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from api.deps import Agent, RecorderDep, RuntimeDep, SessionDep, SettingsDep, Viewer
from api.schemas.common import Page
from api.schemas.conversations import (
    AssignRequest,
    ConversationDetail,
    ConversationMerge,
    ConversationPublic,
    ConversationUpdate,
    MessagePublic,
    NoteCreate,
    NotePublic,
    ReplyCreate,
)
from api.services import analyses, conversations
from api.services.common import fetch_page
from api.services.delivery import IN_REQUEST_CHANNELS
from api.services.delivery_worker import send_in_request
from core.domain.conversations import Conversation, Message, Note
from core.domain.enums import ConversationStatus, Priority

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.get("", response_model=Page[ConversationPublic])
async def list_conversations(
    session: SessionDep,
    principal: Viewer,
    settings: SettingsDep,
    status: Annotated[list[ConversationStatus] | None, Query()] = None,
    channel_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    priority: Priority | None = None,
    updated_since: AwareDatetime | None = None,
    q: Annotated[str | None, Query(max_length=500, description="full text of messages")] = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> dict[str, object]:
    """List conversations, newest first, with filters and a stable cursor."""
    statement, params = conversations.conversation_query(
        session,
        principal.tenant_id,
        status=status,
        channel_id=channel_id,
        assignee_id=assignee_id,
        team_id=team_id,
        customer_id=customer_id,
        tag=tag,
        priority=priority,
        updated_since=updated_since,
        q=q,
        cursor=cursor,
    )
    rows, next_cursor = await fetch_page(
        session, statement, params, limit or settings.api.page_size_default
    )
    return {"items": rows, "next_cursor": next_cursor}


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: uuid.UUID,
    session: SessionDep,
    principal: Viewer,
    messages_limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ConversationDetail:
    """One conversation with its latest messages, notes and linked tickets."""
    conversation, messages, notes, ticket_ids = await conversations.detail(
        session, principal.tenant_id, conversation_id, messages_limit
    )
    found = await analyses.latest_analyses(session, [m.id for m in messages])
    return ConversationDetail.model_validate(
        {
            **ConversationPublic.model_validate(conversation).model_dump(),
            "messages": [
                MessagePublic.model_validate(m).model_copy(update={"analysis": found.get(m.id)})
                for m in messages
            ],
            "notes": [NotePublic.model_validate(n) for n in notes],
            "ticket_ids": ticket_ids,
            "ai": await analyses.conversation_insight(session, conversation.id),
        }
    )


@router.patch("/{conversation_id}", response_model=ConversationPublic)
async def update_conversation(
    conversation_id: uuid.UUID,
    body: ConversationUpdate,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> Conversation:
    """Change status (open, pending, snoozed with `snoozed_until`, resolved), priority, tags."""
    return await conversations.update_conversation(
        session, recorder, principal.tenant_id, conversation_id, body
    )


@router.post(
    "/{conversation_id}/messages", response_model=MessagePublic, status_code=status.HTTP_201_CREATED
)
async def reply(
    conversation_id: uuid.UUID,
    body: ReplyCreate,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
    runtime: RuntimeDep,
) -> Message:
    """Send an agent reply: stored as outbound `queued` and answered at once (a web chat
    reply is pushed to the visitor first, and answered `sent`); on a channel with a
    provider the delivery worker sends it, retrying transient failures, and it
    becomes `sent` or `failed` with the provider's error (`delivery_attempts`,
    `next_attempt_at` and `delivery_error` show the progress)."""
    message = await conversations.reply(
        session,
        recorder,
        principal.tenant_id,
        conversation_id,
        principal.user_id,
        body,
        runtime.settings.channels,
        runtime.attachments,
    )
    if in_request := session.info.pop(IN_REQUEST_CHANNELS, None):
        # A web chat reply goes out from here, so the answer shows it sent.
        await send_in_request(runtime, in_request)
        await session.refresh(message)
    return message


@router.post(
    "/{conversation_id}/notes", response_model=NotePublic, status_code=status.HTTP_201_CREATED
)
async def add_note(
    conversation_id: uuid.UUID,
    body: NoteCreate,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> Note:
    """Add an internal note, never sent to the customer."""
    return await conversations.add_note(
        session, recorder, principal.tenant_id, conversation_id, principal.user_id, body
    )


@router.post("/{conversation_id}/assign", response_model=ConversationPublic)
async def assign(
    conversation_id: uuid.UUID,
    body: AssignRequest,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> Conversation:
    """Assign to an agent and/or a team; null unassigns."""
    return await conversations.assign(session, recorder, principal.tenant_id, conversation_id, body)


@router.post("/merge", response_model=ConversationPublic)
async def merge(
    body: ConversationMerge, session: SessionDep, recorder: RecorderDep, principal: Agent
) -> Conversation:
    """Merge conversations into `target_id`: messages, notes and ticket links move."""
    return await conversations.merge(
        session, recorder, principal.tenant_id, body.target_id, body.source_ids
    )
