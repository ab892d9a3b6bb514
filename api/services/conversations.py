"""Conversations: listing, replies, notes, assignment, status and merging threads."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict
from api.schemas.conversations import (
    AssignRequest,
    ConversationPublic,
    ConversationUpdate,
    NoteCreate,
    ReplyCreate,
)
from core.db.engine import dialect_name
from core.db.types import utcnow
from core.domain.conversations import Conversation, Message, Note
from core.domain.enums import (
    ConversationStatus,
    DeliveryStatus,
    Direction,
    SenderType,
)
from core.domain.tenancy import Team, User
from core.domain.tickets import ticket_conversations
from core.events.store import EventRecorder
from core.events.types import DomainEvent
from core.settings import ChannelSettings
from core.storage import AttachmentStore

from . import delivery, tickets
from .common import get_owned, keyset, list_filter, list_params
from .inbound import message_payload
from .search import conversation_text_match

# The columns of ConversationPublic: the list returns rows, never ORM objects (hydrating 51
# of them cost more than the query).
_conversations = cast(Table, Conversation.__table__)
LIST_COLUMNS = tuple(_conversations.c[name] for name in ConversationPublic.model_fields)
_EQUALS = ("channel_id", "assignee_id", "team_id", "customer_id", "priority")


@functools.lru_cache(maxsize=512)
def _list_statement(dialect: str, names: tuple[str, ...]) -> Select[Any]:
    """The list statement for one combination of filters, with bound parameters: built and
    compiled once, where building it per request cost as much as running it."""
    c = _conversations.c
    query = select(*LIST_COLUMNS).where(c.tenant_id == bindparam("tenant_id"))
    for name in names:
        cond = list_filter(name, c, dialect, _EQUALS, conversation_text_match(dialect))
        if cond is not None:
            query = query.where(cond)
    return keyset(query, c.id, "after" in names)


def conversation_query(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    status: list[ConversationStatus] | None = None,
    channel_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    tag: str | None = None,
    priority: str | None = None,
    updated_since: datetime | None = None,
    q: str | None = None,
    cursor: str | None = None,
) -> tuple[Select[Any], dict[str, Any]]:
    """The list statement (ConversationPublic's columns, newest first, `limit` rows) and
    its parameters, for `fetch_page`."""
    dialect = dialect_name(session)
    params = list_params(
        dialect,
        status=status,
        q=q,
        cursor=cursor,
        channel_id=channel_id,
        assignee_id=assignee_id,
        team_id=team_id,
        customer_id=customer_id,
        priority=priority,
        tag=tag,
        updated_since=updated_since,
    )
    statement = _list_statement(dialect, tuple(params))
    params["tenant_id"] = tenant_id
    return statement, params


async def detail(
    session: AsyncSession, tenant_id: uuid.UUID, conversation_id: uuid.UUID, limit: int
) -> tuple[Conversation, list[Message], list[Note], list[uuid.UUID]]:
    conversation = await get_owned(
        session, Conversation, conversation_id, tenant_id, what="conversation"
    )
    # The latest `limit` messages, shown oldest first as a thread reads.
    messages = list(
        (
            await session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation.id)
                .order_by(Message.id.desc())
                .limit(limit)
            )
        ).all()
    )[::-1]
    notes = list(
        (
            await session.scalars(
                select(Note).where(Note.conversation_id == conversation.id).order_by(Note.id)
            )
        ).all()
    )
    ticket_ids = list(
        (
            await session.scalars(
                select(ticket_conversations.c.ticket_id).where(
                    ticket_conversations.c.conversation_id == conversation.id
                )
            )
        ).all()
    )
    return conversation, messages, notes, ticket_ids


async def _touch(session: AsyncSession, conversation: Conversation) -> None:
    conversation.updated_at = utcnow()
    await session.flush()


async def reply(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    author_id: uuid.UUID | None,
    data: ReplyCreate,
    channels: ChannelSettings | None = None,
    attachments: AttachmentStore | None = None,
) -> Message:
    """Store an agent reply; with `channels` given, on a channel with a provider it is
    stored `queued` and due for the delivery worker (delivery.py), which sends it.
    `attachments`: the store the reply's stored-blob attachments must exist in."""
    conversation = await get_owned(
        session, Conversation, conversation_id, tenant_id, what="conversation"
    )
    if conversation.merged_into_id is not None:
        raise Conflict(
            f"conversation was merged into {conversation.merged_into_id}; reply there",
            code="conversation_merged",
        )
    sending = await delivery.prepare(session, conversation, data, channels, attachments)
    meta: dict[str, Any] = {}
    if data.template is not None:
        meta["template"] = data.template.model_dump(exclude_none=True)
    if data.interactive is not None:
        meta["interactive"] = data.interactive
    now = utcnow()
    message = Message(
        tenant_id=tenant_id,
        conversation_id=conversation.id,
        channel_id=conversation.channel_id,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.AGENT,
        sender_id=author_id,
        text=data.text or (f"[template {data.template.name}]" if data.template else ""),
        content_type=data.content_type,
        attachments=data.attachments,
        delivery_status=DeliveryStatus.QUEUED,
        meta=meta,
        sent_at=now,
        created_at=now,
    )
    if sending is not None:
        delivery.enqueue(session, message, sending, now)
    session.add(message)
    conversation.last_message_at = now
    conversation.message_count += 1
    first_reply = conversation.first_reply_at is None
    if first_reply:
        conversation.first_reply_at = now
    await _touch(session, conversation)
    await recorder.record(
        DomainEvent.MESSAGE_SENT,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation.id,
        payload=message_payload(message, conversation),
    )
    await tickets.record_first_response(session, recorder, conversation.id, now)
    await session.commit()
    return message


async def add_note(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    author_id: uuid.UUID | None,
    data: NoteCreate,
) -> Note:
    conversation = await get_owned(
        session, Conversation, conversation_id, tenant_id, what="conversation"
    )
    note = Note(
        tenant_id=tenant_id, conversation_id=conversation.id, author_id=author_id, body=data.body
    )
    session.add(note)
    await _touch(session, conversation)
    await recorder.record(
        DomainEvent.NOTE_ADDED,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation.id,
        payload={"note_id": str(note.id), "author_id": str(author_id) if author_id else None},
    )
    await session.commit()
    return note


async def assign(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    data: AssignRequest,
) -> Conversation:
    conversation = await get_owned(
        session, Conversation, conversation_id, tenant_id, what="conversation"
    )
    fields = data.model_dump(exclude_unset=True)
    if not fields:
        raise BadRequest("give assignee_id, team_id or both (null unassigns)", code="empty_change")
    if fields.get("assignee_id") is not None:
        user = await get_owned(session, User, fields["assignee_id"], tenant_id, what="assignee")
        if not user.is_active:
            raise Conflict("the assignee is deactivated", code="assignee_inactive")
    if fields.get("team_id") is not None:
        await get_owned(session, Team, fields["team_id"], tenant_id, what="team")
    for name, value in fields.items():
        setattr(conversation, name, value)
    await _touch(session, conversation)
    await recorder.record(
        DomainEvent.CONVERSATION_ASSIGNED,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation.id,
        payload={k: str(v) if v else None for k, v in fields.items()},
    )
    await session.commit()
    return conversation


async def update_conversation(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    data: ConversationUpdate,
) -> Conversation:
    conversation = await get_owned(
        session, Conversation, conversation_id, tenant_id, what="conversation"
    )
    fields = data.model_dump(exclude_unset=True)
    for name in ("status", "priority", "tags"):
        if name in fields and fields[name] is None:
            raise BadRequest(f"{name} cannot be null", code="null_not_allowed")
    if conversation.merged_into_id is not None and fields.get("status") not in (
        None,
        ConversationStatus.RESOLVED,
    ):
        # Reopened, it would take the customer's new messages, yet refuse replies.
        raise Conflict(
            f"conversation was merged into {conversation.merged_into_id}; reopen that one",
            code="conversation_merged",
        )
    old_status = conversation.status
    if "tags" in fields:
        fields["tags"] = list(dict.fromkeys(fields["tags"]))
    if fields.get("status") not in (None, ConversationStatus.SNOOZED):
        fields.setdefault("snoozed_until", None)
    for name, value in fields.items():
        setattr(conversation, name, value)
    try:
        await _touch(session, conversation)
    except IntegrityError as exc:
        # Reopening while the customer already has a newer open thread on this channel.
        await session.rollback()
        raise Conflict(
            "the customer already has an open conversation on this channel",
            code="open_conversation_exists",
        ) from exc
    event = (
        DomainEvent.CONVERSATION_STATUS_CHANGED
        if conversation.status != old_status
        else DomainEvent.CONVERSATION_UPDATED
    )
    await recorder.record(
        event,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation.id,
        payload={"from": old_status, "to": conversation.status, "changed": sorted(fields)},
    )
    await session.commit()
    return conversation


async def merge(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    target_id: uuid.UUID,
    source_ids: list[uuid.UUID],
) -> Conversation:
    """Move the sources' messages, notes and ticket links into the target; the sources are
    resolved and point at the target."""
    sources = list(dict.fromkeys(source_ids))
    if target_id in sources:
        raise BadRequest("the target cannot also be a source", code="same_conversation")
    target = await get_owned(session, Conversation, target_id, tenant_id, what="conversation")
    if target.merged_into_id is not None:
        raise Conflict("the target was itself merged away", code="already_merged")
    moved = 0
    for source_id in sources:
        source = await get_owned(session, Conversation, source_id, tenant_id, what="conversation")
        if source.merged_into_id is not None:
            raise Conflict(f"conversation {source_id} was already merged", code="already_merged")
        result = await session.execute(
            update(Message)
            .where(Message.conversation_id == source.id)
            .values(conversation_id=target.id)
        )
        moved += result.rowcount or 0  # type: ignore[attr-defined]
        await session.execute(
            update(Note).where(Note.conversation_id == source.id).values(conversation_id=target.id)
        )
        linked = select(ticket_conversations.c.ticket_id).where(
            ticket_conversations.c.conversation_id == target.id
        )
        await session.execute(
            update(ticket_conversations)
            .where(
                ticket_conversations.c.conversation_id == source.id,
                ticket_conversations.c.ticket_id.not_in(linked),
            )
            .values(conversation_id=target.id)
        )
        # Links the target already had stay single: drop the source's duplicates.
        await session.execute(
            delete(ticket_conversations).where(ticket_conversations.c.conversation_id == source.id)
        )
        source.status = ConversationStatus.RESOLVED.value
        source.merged_into_id = target.id
        source.message_count = 0
        if source.last_message_at and (
            target.last_message_at is None or source.last_message_at > target.last_message_at
        ):
            target.last_message_at = source.last_message_at
        await session.flush()
    count = await session.scalar(
        select(func.count()).select_from(Message).where(Message.conversation_id == target.id)
    )
    target.message_count = int(count or 0)
    await _touch(session, target)
    await recorder.record(
        DomainEvent.CONVERSATION_MERGED,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=target.id,
        payload={"source_ids": [str(s) for s in sources], "messages_moved": moved},
    )
    await session.commit()
    return target
