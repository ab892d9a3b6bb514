"""The generic inbound path every channel uses: resolve the customer, thread the
conversation, store the message once, announce `message.received`.

This is the hottest write path, so it speaks SQLAlchemy Core and keeps its round trips
few: one statement finds the channel and any message already stored under the provider's
id, one finds the customer with their open thread, then the message INSERT, the thread's
UPDATE and the events (written at commit, with the outbox rows, in one statement on
PostgreSQL). Races are settled by the unique indexes (`ON CONFLICT DO NOTHING`), not by
savepoints: a request that loses one uses the winner's row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Select, Table, and_, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Conflict, NotFound
from api.schemas.conversations import InboundCustomer, InboundMessage, MessagePublic
from api.schemas.customers import normalize_identity
from core.db.engine import dialect_name
from core.db.types import UTCDateTime, utcnow, uuid7
from core.domain.channels import Channel
from core.domain.conversations import Conversation, Message
from core.domain.customers import Customer, CustomerIdentity
from core.domain.enums import (
    DEFAULT_IDENTITY,
    OPEN_CONVERSATION_STATUSES,
    ChannelType,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    IdentityKind,
    Priority,
    SenderType,
)
from core.events.store import EventRecorder
from core.events.types import DomainEvent

_channels = cast(Table, Channel.__table__)
_messages = cast(Table, Message.__table__)
_conversations = cast(Table, Conversation.__table__)
_customers = cast(Table, Customer.__table__)
_identities = cast(Table, CustomerIdentity.__table__)
# MessagePublic's fields by column ("metadata" is `meta` on the ORM class only).
_MESSAGE_COLUMNS = tuple(_messages.c[name] for name in MessagePublic.model_fields)
_OPEN = [s.value for s in OPEN_CONVERSATION_STATUSES]
_REOPENS = (ConversationStatus.PENDING.value, ConversationStatus.SNOOZED.value)


@dataclass(frozen=True)
class InboundOutcome:
    created: bool
    message: dict[str, Any]  # MessagePublic's fields
    conversation_id: uuid.UUID
    customer_id: uuid.UUID


@dataclass(frozen=True)
class _Thread:
    customer_id: uuid.UUID
    conversation_id: uuid.UUID | None
    status: str | None


def _insert(session: AsyncSession, table: Table) -> Any:
    return (pg_insert if dialect_name(session) == "postgresql" else sqlite_insert)(table)


def _identity(channel_type: str, customer: InboundCustomer) -> tuple[IdentityKind, str]:
    if customer.identity is not None:
        kind, value = customer.identity.kind, customer.identity.value
    elif customer.external_id is not None:
        kind, value = DEFAULT_IDENTITY[ChannelType(channel_type)], customer.external_id
    else:
        kind, value = IdentityKind.EMAIL, str(customer.email)
    return kind, normalize_identity(kind, value)


async def _channel(session: AsyncSession, tenant_id: uuid.UUID, data: InboundMessage) -> Row[Any]:
    """The channel, and the message it already stored under this provider id, if any."""
    stored = and_(
        _messages.c.channel_id == _channels.c.id,
        _messages.c.provider_message_id == data.provider_message_id,
    )
    query = (
        select(
            _channels.c.tenant_id,
            _channels.c.type,
            _channels.c.is_active,
            _conversations.c.customer_id,
            *(c.label(f"message_{c.name}") for c in _MESSAGE_COLUMNS),
        )
        .select_from(
            _channels.outerjoin(_messages, stored).outerjoin(
                _conversations, _conversations.c.id == _messages.c.conversation_id
            )
        )
        .where(_channels.c.id == data.channel_id)
    )
    row = (await session.execute(query)).first()
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"channel {data.channel_id} not found")
    return row


def _stored(row: Row[Any]) -> InboundOutcome:
    message = {c.name: getattr(row, f"message_{c.name}") for c in _MESSAGE_COLUMNS}
    return InboundOutcome(False, message, message["conversation_id"], row.customer_id)


def _thread_query(channel_id: uuid.UUID) -> Select[Any]:
    """A customer with their open thread on the channel (at most one, by a unique index)."""
    open_thread = and_(
        _conversations.c.customer_id == _customers.c.id,
        _conversations.c.channel_id == channel_id,
        _conversations.c.status.in_(_OPEN),
    )
    return select(
        _customers.c.id,
        _customers.c.name,
        _customers.c.merged_into_id,
        _conversations.c.id.label("conversation_id"),
        _conversations.c.status,
    ).select_from(_customers.outerjoin(_conversations, open_thread))


async def _find(
    session: AsyncSession, tenant_id: uuid.UUID, channel_id: uuid.UUID, kind: str, value: str
) -> Row[Any] | None:
    query = (
        _thread_query(channel_id)
        .join(_identities, _identities.c.customer_id == _customers.c.id)
        .where(
            _identities.c.tenant_id == tenant_id,
            _identities.c.kind == kind,
            _identities.c.value == value,
        )
    )
    row: Row[Any] | None = (await session.execute(query)).first()
    return row


async def _resolve(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    channel_id: uuid.UUID,
    channel_type: str,
    data: InboundCustomer,
) -> _Thread:
    kind, value = _identity(channel_type, data)
    row = await _find(session, tenant_id, channel_id, kind, value)
    if row is None:
        created = await _create_customer(session, recorder, tenant_id, kind, value, data)
        if created is not None:
            return created
        # A concurrent request created the same identity first: use theirs.
        row = await _find(session, tenant_id, channel_id, kind, value)
        if row is None:
            raise RuntimeError(f"identity {kind}:{value} conflicted but is gone")
    # A merged customer's identities moved to the survivor, so this only guards old rows.
    if row.merged_into_id is not None:
        query = _thread_query(channel_id).where(_customers.c.id == row.merged_into_id)
        row = (await session.execute(query)).one()
    if data.name and not row.name:
        await session.execute(
            update(_customers)
            .where(_customers.c.id == row.id)
            .values(name=data.name, updated_at=utcnow())
        )
    return _Thread(row.id, row.conversation_id, row.status)


async def _create_customer(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    kind: str,
    value: str,
    data: InboundCustomer,
) -> _Thread | None:
    """A new customer with this identity; None when a concurrent request claimed the
    identity first (its INSERT waited for that commit), our customer row then removed."""
    now = utcnow()
    customer_id = uuid7()
    name = data.name or ""
    await session.execute(
        _customers.insert().values(
            id=customer_id,
            tenant_id=tenant_id,
            name=name,
            email=str(data.email).lower() if data.email else None,
            phone=data.phone,
            attributes=data.attributes or {},
            created_at=now,
            updated_at=now,
        )
    )
    claimed = await session.execute(
        _insert(session, _identities)
        .values(
            id=uuid7(),
            tenant_id=tenant_id,
            customer_id=customer_id,
            kind=kind,
            value=value,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "value"])
        .returning(_identities.c.id)
    )
    if claimed.first() is None:
        await session.execute(delete(_customers).where(_customers.c.id == customer_id))
        return None
    await recorder.record(
        DomainEvent.CUSTOMER_CREATED,
        tenant_id=tenant_id,
        aggregate_type="customer",
        aggregate_id=customer_id,
        payload={"name": name, "identity": {"kind": kind, "value": value}},
        first=True,
    )
    return _Thread(customer_id, None, None)


async def _open_thread(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    data: InboundMessage,
    thread: _Thread,
    sent_at: datetime,
    now: datetime,
) -> uuid.UUID | None:
    """A new open conversation that already counts the message being stored; None when a
    concurrent request opened the customer's thread first (we waited for its commit)."""
    conversation_id = uuid7()
    subject = data.subject or data.text.split("\n", 1)[0][:120]
    opened = await session.execute(
        _insert(session, _conversations)
        .values(
            id=conversation_id,
            tenant_id=tenant_id,
            customer_id=thread.customer_id,
            channel_id=data.channel_id,
            status=ConversationStatus.OPEN.value,
            priority=Priority.NORMAL.value,
            tags=[],
            subject=subject[:500],
            message_count=1,
            last_message_at=sent_at,
            last_inbound_at=now,
            created_at=now,
            updated_at=now,
        )
        # The one conflict possible: the partial unique index of open threads.
        .on_conflict_do_nothing()
        .returning(_conversations.c.id)
    )
    if opened.first() is None:
        return None
    await recorder.record(
        DomainEvent.CONVERSATION_OPENED,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation_id,
        payload={"customer_id": str(thread.customer_id), "channel_id": str(data.channel_id)},
        first=True,
    )
    return conversation_id


async def _count_message(
    session: AsyncSession,
    thread: _Thread,
    conversation_id: uuid.UUID,
    sent_at: datetime,
    now: datetime,
) -> None:
    """One UPDATE of an existing thread: it also locks the conversation row, which orders
    concurrent writers of the same thread before their events are appended."""
    c = _conversations.c
    sent = literal(sent_at, UTCDateTime())
    latest = (
        func.max(c.last_message_at, sent)
        if dialect_name(session) == "sqlite"
        else func.greatest(c.last_message_at, sent)
    )
    reopen = (
        {"status": ConversationStatus.OPEN.value, "snoozed_until": None}
        if thread.status in _REOPENS
        else {}
    )
    await session.execute(
        update(_conversations)
        .where(c.id == conversation_id)
        .values(
            last_message_at=func.coalesce(latest, sent),
            last_inbound_at=now,
            message_count=c.message_count + 1,
            updated_at=now,
            **reopen,
        )
    )


async def receive(
    session: AsyncSession, recorder: EventRecorder, tenant_id: uuid.UUID, data: InboundMessage
) -> InboundOutcome:
    channel = await _channel(session, tenant_id, data)
    if not channel.is_active:
        raise Conflict(f"channel {data.channel_id} is disabled", code="channel_disabled")
    if channel.message_id is not None:
        return _stored(channel)

    thread = await _resolve(
        session, recorder, tenant_id, data.channel_id, channel.type, data.customer
    )
    now = utcnow()
    sent_at = data.sent_at or now
    conversation_id = thread.conversation_id
    opened = False
    if conversation_id is None:
        conversation_id = await _open_thread(
            session, recorder, tenant_id, data, thread, sent_at, now
        )
        opened = conversation_id is not None
        if conversation_id is None:
            thread = await _opened_meanwhile(session, thread.customer_id, data.channel_id)
            conversation_id = thread.conversation_id
            assert conversation_id is not None
    message_id = uuid7()
    message: dict[str, Any] = {
        "id": message_id,
        "conversation_id": conversation_id,
        "channel_id": data.channel_id,
        "direction": Direction.INBOUND.value,
        "sender_type": SenderType.CUSTOMER.value,
        "sender_id": thread.customer_id,
        "text": data.text,
        "content_type": data.content_type.value,
        "attachments": data.attachments,
        "provider_message_id": data.provider_message_id,
        "delivery_status": DeliveryStatus.RECEIVED.value,
        "sent_at": sent_at,
        "created_at": now,
    }
    stored = await session.execute(
        _insert(session, _messages)
        # An unset JSON column (delivery_error) stays SQL NULL, not JSON null.
        .values(tenant_id=tenant_id, metadata=data.metadata, updated_at=now, **message)
        .on_conflict_do_nothing(index_elements=["channel_id", "provider_message_id"])
        .returning(_messages.c.id)
    )
    if stored.first() is None:
        # A concurrent request stored the same provider id first (we waited for its
        # commit): what this one wrote (a customer, a thread) goes, theirs is the answer.
        await session.rollback()
        again = await _channel(session, tenant_id, data)
        if again.message_id is None:
            raise RuntimeError(f"message {data.provider_message_id!r} conflicted but is gone")
        return _stored(again)
    if not opened:
        await _count_message(session, thread, conversation_id, sent_at, now)
    await recorder.record(
        DomainEvent.MESSAGE_RECEIVED,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation_id,
        payload=_payload(
            message_id,
            conversation_id,
            thread.customer_id,
            data.channel_id,
            Direction.INBOUND.value,
            SenderType.CUSTOMER.value,
            data.text,
            data.content_type.value,
            sent_at,
        ),
    )
    await session.commit()
    return InboundOutcome(
        True, {**message, "delivery_error": None}, conversation_id, thread.customer_id
    )


async def _opened_meanwhile(
    session: AsyncSession, customer_id: uuid.UUID, channel_id: uuid.UUID
) -> _Thread:
    """The open thread a concurrent request opened for this customer first."""
    query = _thread_query(channel_id).where(_customers.c.id == customer_id)
    row = (await session.execute(query)).one()
    if row.conversation_id is None:
        raise RuntimeError(f"customer {customer_id}'s open thread conflicted but is gone")
    return _Thread(row.id, row.conversation_id, row.status)


def message_payload(message: Message, conversation: Conversation) -> dict[str, Any]:
    """`message.received` / `message.sent` data from a Message and its Conversation."""
    return _payload(
        message.id,
        conversation.id,
        conversation.customer_id,
        message.channel_id,
        message.direction,
        message.sender_type,
        message.text,
        message.content_type,
        message.sent_at,
    )


def _payload(
    message_id: uuid.UUID,
    conversation_id: uuid.UUID,
    customer_id: uuid.UUID,
    channel_id: uuid.UUID,
    direction: str,
    sender_type: str,
    text: str,
    content_type: str,
    sent_at: datetime,
) -> dict[str, Any]:
    return {
        "message_id": str(message_id),
        "conversation_id": str(conversation_id),
        "customer_id": str(customer_id),
        "channel_id": str(channel_id),
        "direction": direction,
        "sender_type": sender_type,
        "text": text,
        "content_type": content_type,
        "sent_at": sent_at.isoformat(),
    }
