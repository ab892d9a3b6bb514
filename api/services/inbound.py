"""The generic inbound path every channel uses: resolve the customer, thread the
conversation, store the message once, announce `message.received`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, inspect, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import lazyload

from api.errors import Conflict
from api.schemas.conversations import InboundCustomer, InboundMessage
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
    SenderType,
)
from core.events.store import EventRecorder
from core.events.types import DomainEvent

from .common import get_owned


@dataclass(frozen=True)
class InboundOutcome:
    created: bool
    message: Message
    conversation_id: uuid.UUID
    customer_id: uuid.UUID


def _identity(channel: Channel, customer: InboundCustomer) -> tuple[IdentityKind, str]:
    if customer.identity is not None:
        kind, value = customer.identity.kind, customer.identity.value
    elif customer.external_id is not None:
        kind, value = DEFAULT_IDENTITY[ChannelType(channel.type)], customer.external_id
    else:
        kind, value = IdentityKind.EMAIL, str(customer.email)
    return kind, normalize_identity(kind, value)


async def _existing_message(
    session: AsyncSession, channel_id: uuid.UUID, provider_id: str
) -> Message | None:
    return await session.scalar(
        select(Message).where(
            Message.channel_id == channel_id, Message.provider_message_id == provider_id
        )
    )


async def _resolve_customer(
    session: AsyncSession,
    recorder: EventRecorder,
    channel: Channel,
    data: InboundCustomer,
) -> Customer:
    kind, value = _identity(channel, data)
    lookup = (
        select(Customer)
        .join(CustomerIdentity, CustomerIdentity.customer_id == Customer.id)
        .where(
            CustomerIdentity.tenant_id == channel.tenant_id,
            CustomerIdentity.kind == kind,
            CustomerIdentity.value == value,
        )
        # The identities are not used here: skip the selectin query that loads them.
        .options(lazyload(Customer.identities))
    )
    customer = await session.scalar(lookup)
    if customer is None:
        try:
            async with session.begin_nested():
                customer = Customer(
                    tenant_id=channel.tenant_id,
                    name=data.name or "",
                    email=str(data.email).lower() if data.email else None,
                    phone=data.phone,
                    attributes=data.attributes or {},
                )
                session.add(customer)
                await session.flush()
                session.add(
                    CustomerIdentity(
                        tenant_id=channel.tenant_id, customer_id=customer.id, kind=kind, value=value
                    )
                )
                await session.flush()
        except IntegrityError:
            # A concurrent request created the same identity first: use theirs.
            customer = await session.scalar(lookup)
            if customer is None:
                raise
        else:
            await recorder.record(
                DomainEvent.CUSTOMER_CREATED,
                tenant_id=channel.tenant_id,
                aggregate_type="customer",
                aggregate_id=customer.id,
                payload={"name": customer.name, "identity": {"kind": kind, "value": value}},
                first=True,
            )
    # A merged customer's identities moved to the survivor, so this only guards old rows.
    if customer.merged_into_id is not None:
        customer = await session.get_one(Customer, customer.merged_into_id)
    if data.name and not customer.name:
        customer.name = data.name
    return customer


async def _thread(
    session: AsyncSession,
    recorder: EventRecorder,
    channel: Channel,
    customer: Customer,
    subject: str,
) -> Conversation:
    lookup = select(Conversation).where(
        Conversation.customer_id == customer.id,
        Conversation.channel_id == channel.id,
        Conversation.status.in_([s.value for s in OPEN_CONVERSATION_STATUSES]),
    )
    conversation = await session.scalar(lookup)
    if conversation is not None:
        return conversation
    try:
        async with session.begin_nested():
            conversation = Conversation(
                tenant_id=channel.tenant_id,
                customer_id=customer.id,
                channel_id=channel.id,
                subject=subject[:500],
            )
            session.add(conversation)
            await session.flush()
    except IntegrityError:
        conversation = await session.scalar(lookup)
        if conversation is None:
            raise
        return conversation
    await recorder.record(
        DomainEvent.CONVERSATION_OPENED,
        tenant_id=channel.tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation.id,
        payload={"customer_id": str(customer.id), "channel_id": str(channel.id)},
        first=True,
    )
    return conversation


async def _insert_once(session: AsyncSession, message: Message) -> bool:
    """INSERT the message unless the channel already stored its provider id: False then.

    One `INSERT ... ON CONFLICT DO NOTHING` instead of an ORM flush inside a savepoint
    (SAVEPOINT, INSERT, RELEASE: three round trips on the hottest path). `message` stays a
    plain (transient) object; like a flush, only the attributes set on it are sent, so an
    unset JSON column is SQL NULL, not JSON null."""
    table = cast(Table, Message.__table__)
    given = inspect(message).dict
    values = {
        a.columns[0].name: given[a.key] for a in inspect(Message).column_attrs if a.key in given
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=["channel_id", "provider_message_id"])
        .returning(table.c.id)
    )
    return (await session.execute(statement)).first() is not None


def message_payload(message: Message, conversation: Conversation) -> dict[str, Any]:
    return {
        "message_id": str(message.id),
        "conversation_id": str(conversation.id),
        "customer_id": str(conversation.customer_id),
        "channel_id": str(message.channel_id),
        "direction": message.direction,
        "sender_type": message.sender_type,
        "text": message.text,
        "content_type": message.content_type,
        "sent_at": message.sent_at.isoformat(),
    }


async def receive(
    session: AsyncSession, recorder: EventRecorder, tenant_id: uuid.UUID, data: InboundMessage
) -> InboundOutcome:
    channel = await get_owned(session, Channel, data.channel_id, tenant_id, what="channel")
    if not channel.is_active:
        raise Conflict(f"channel {channel.id} is disabled", code="channel_disabled")
    existing = await _existing_message(session, channel.id, data.provider_message_id)
    if existing is not None:
        return await _duplicate(session, existing)

    customer = await _resolve_customer(session, recorder, channel, data.customer)
    subject = data.subject or data.text.split("\n", 1)[0][:120]
    conversation = await _thread(session, recorder, channel, customer, subject)
    now = utcnow()
    message = Message(
        id=uuid7(),
        tenant_id=tenant_id,
        conversation_id=conversation.id,
        channel_id=channel.id,
        direction=Direction.INBOUND,
        sender_type=SenderType.CUSTOMER,
        sender_id=customer.id,
        text=data.text,
        content_type=data.content_type,
        attachments=data.attachments,
        provider_message_id=data.provider_message_id,
        delivery_status=DeliveryStatus.RECEIVED,
        meta=data.metadata,
        sent_at=data.sent_at or now,
        created_at=now,
        updated_at=now,
    )
    if not await _insert_once(session, message):
        # A concurrent request stored the same provider id first (we waited for it).
        found = await _existing_message(session, channel.id, data.provider_message_id)
        if found is None:
            raise RuntimeError(f"message {data.provider_message_id!r} conflicted but is gone")
        return await _duplicate(session, found)

    # One UPDATE: it also locks the conversation row, which orders concurrent writers of the
    # same thread before their events are appended.
    reopen = conversation.status in (ConversationStatus.PENDING, ConversationStatus.SNOOZED)
    sent = literal(message.sent_at, UTCDateTime())
    latest = (
        func.max(Conversation.last_message_at, sent)
        if dialect_name(session) == "sqlite"
        else func.greatest(Conversation.last_message_at, sent)
    )
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id)
        .values(
            last_message_at=func.coalesce(latest, sent),
            last_inbound_at=now,
            message_count=Conversation.message_count + 1,
            updated_at=now,
            **({"status": ConversationStatus.OPEN.value, "snoozed_until": None} if reopen else {}),
        )
        .execution_options(synchronize_session=False)
    )
    await recorder.record(
        DomainEvent.MESSAGE_RECEIVED,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation.id,
        payload=message_payload(message, conversation),
    )
    await session.commit()
    return InboundOutcome(True, message, conversation.id, customer.id)


async def _duplicate(session: AsyncSession, message: Message) -> InboundOutcome:
    conversation = await session.get_one(Conversation, message.conversation_id)
    return InboundOutcome(False, message, conversation.id, conversation.customer_id)
