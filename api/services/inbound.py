"""The generic inbound path every channel uses: resolve the customer, thread the
conversation, store the message once, announce `message.received`.

This is the hottest write path, so it runs SQLAlchemy Core statements built once (see
`_statements`) and keeps its round trips few: one statement finds the channel and any
message already stored under the provider's id, one finds the customer with their open
thread, then the message INSERT, the thread's UPDATE and the events (written at commit
with their outbox rows, in one statement on PostgreSQL). Races are settled by the unique
indexes (`ON CONFLICT DO NOTHING`, which waits for the other transaction), not by
savepoints: a request that loses one uses the winner's row."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Delete,
    Executable,
    Insert,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    func,
    select,
    update,
)
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
# MessagePublic's stored fields by column ("metadata" is `meta` on the ORM class only;
# the analysis arrives later, from the enrichment pipeline).
_MESSAGE_COLUMNS = tuple(
    _messages.c[name] for name in MessagePublic.model_fields if name in _messages.c
)
_REOPENS = (ConversationStatus.PENDING.value, ConversationStatus.SNOOZED.value)


class _Statements(NamedTuple):
    channel: Select[Any]
    by_identity: Select[Any]
    by_customer: Select[Any]
    new_customer: Insert
    drop_customer: Delete
    rename_customer: Update
    claim_identity: Insert
    open_thread: Insert
    store_message: Insert
    count_message: Update
    count_and_reopen: Update


@functools.cache
def _statements(dialect: str) -> _Statements:
    """Every statement of the path, with bound parameters, built once per dialect:
    building them per request cost as much as running them."""
    m, c, cu = _messages.c, _conversations.c, _customers.c
    stored = and_(m.channel_id == _channels.c.id, m.provider_message_id == bindparam("pid"))
    channel = (
        select(
            _channels.c.tenant_id,
            _channels.c.type,
            _channels.c.is_active,
            c.customer_id,
            *(column.label(f"message_{column.name}") for column in _MESSAGE_COLUMNS),
        )
        .select_from(
            _channels.outerjoin(_messages, stored).outerjoin(
                _conversations, c.id == m.conversation_id
            )
        )
        .where(_channels.c.id == bindparam("channel_id"))
    )
    # A customer with their open thread on the channel (at most one, by a unique index).
    open_thread = and_(
        c.customer_id == cu.id,
        c.channel_id == bindparam("channel_id"),
        c.status.in_([s.value for s in OPEN_CONVERSATION_STATUSES]),
    )
    thread = select(
        cu.id, cu.name, cu.merged_into_id, c.id.label("conversation_id"), c.status
    ).select_from(_customers.outerjoin(_conversations, open_thread))
    by_identity = thread.join(_identities, _identities.c.customer_id == cu.id).where(
        _identities.c.tenant_id == bindparam("tenant_id"),
        _identities.c.kind == bindparam("kind"),
        _identities.c.value == bindparam("value"),
    )
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    sent = bindparam("sent_at", type_=UTCDateTime())
    now = bindparam("now", type_=UTCDateTime())
    latest = (
        func.greatest(c.last_message_at, sent)
        if dialect == "postgresql"
        else func.max(c.last_message_at, sent)
    )
    # One UPDATE of an existing thread: it also locks the conversation row, which orders
    # concurrent writers of the same thread before their events are appended.
    count = (
        update(_conversations)
        .where(c.id == bindparam("conversation_id"))
        .values(
            last_message_at=func.coalesce(latest, sent),
            last_inbound_at=now,
            message_count=c.message_count + 1,
            updated_at=now,
        )
    )
    return _Statements(
        channel=channel,
        by_identity=by_identity,
        by_customer=thread.where(cu.id == bindparam("customer_id")),
        new_customer=_customers.insert(),
        drop_customer=delete(_customers).where(cu.id == bindparam("customer_id")),
        rename_customer=update(_customers)
        .where(cu.id == bindparam("customer_id"))
        .values(name=bindparam("new_name"), updated_at=now),
        claim_identity=insert(_identities)
        .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "value"])
        .returning(_identities.c.id),
        # The one conflict possible: the partial unique index of open threads.
        open_thread=insert(_conversations).on_conflict_do_nothing().returning(c.id),
        store_message=insert(_messages)
        .on_conflict_do_nothing(index_elements=["channel_id", "provider_message_id"])
        .returning(m.id),
        count_message=count,
        count_and_reopen=count.values(status=ConversationStatus.OPEN.value, snoozed_until=None),
    )


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


class _Run:
    """The request's session and its dialect's statements."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.sql = _statements(dialect_name(session))

    async def rows(self, statement: Executable, **params: Any) -> Any:
        return await self.session.execute(statement, params)


def _identity(channel_type: str, customer: InboundCustomer) -> tuple[IdentityKind, str]:
    if customer.identity is not None:
        kind, value = customer.identity.kind, customer.identity.value
    elif customer.external_id is not None:
        kind, value = DEFAULT_IDENTITY[ChannelType(channel_type)], customer.external_id
    else:
        kind, value = IdentityKind.EMAIL, str(customer.email)
    return kind, normalize_identity(kind, value)


async def _channel(run: _Run, tenant_id: uuid.UUID, data: InboundMessage) -> Row[Any]:
    """The channel, and the message it already stored under this provider id, if any."""
    result = await run.rows(
        run.sql.channel, channel_id=data.channel_id, pid=data.provider_message_id
    )
    row: Row[Any] | None = result.first()
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"channel {data.channel_id} not found")
    return row


def _stored(row: Row[Any]) -> InboundOutcome:
    message = {c.name: getattr(row, f"message_{c.name}") for c in _MESSAGE_COLUMNS}
    return InboundOutcome(False, message, message["conversation_id"], row.customer_id)


async def _resolve(
    run: _Run,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    channel: Row[Any],
    data: InboundMessage,
) -> _Thread:
    kind, value = _identity(channel.type, data.customer)
    lookup = {"tenant_id": tenant_id, "kind": kind, "value": value, "channel_id": data.channel_id}
    row = (await run.rows(run.sql.by_identity, **lookup)).first()
    if row is None:
        created = await _create_customer(run, recorder, tenant_id, kind, value, data.customer)
        if created is not None:
            return created
        # A concurrent request created the same identity first: use theirs.
        row = (await run.rows(run.sql.by_identity, **lookup)).first()
        if row is None:
            raise RuntimeError(f"identity {kind}:{value} conflicted but is gone")
    # A merged customer's identities moved to the survivor, so this only guards old rows.
    if row.merged_into_id is not None:
        row = (
            await run.rows(
                run.sql.by_customer, customer_id=row.merged_into_id, channel_id=data.channel_id
            )
        ).one()
    if data.customer.name and not row.name:
        await run.rows(
            run.sql.rename_customer, customer_id=row.id, new_name=data.customer.name, now=utcnow()
        )
    return _Thread(row.id, row.conversation_id, row.status)


async def _create_customer(
    run: _Run,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    kind: str,
    value: str,
    data: InboundCustomer,
) -> _Thread | None:
    """A new customer with this identity; None when a concurrent request claimed the
    identity first, our customer row then removed."""
    now = utcnow()
    customer_id = uuid7()
    name = data.name or ""
    await run.rows(
        run.sql.new_customer,
        id=customer_id,
        tenant_id=tenant_id,
        name=name,
        email=str(data.email).lower() if data.email else None,
        phone=data.phone,
        attributes=data.attributes or {},
        created_at=now,
        updated_at=now,
    )
    claimed = await run.rows(
        run.sql.claim_identity,
        id=uuid7(),
        tenant_id=tenant_id,
        customer_id=customer_id,
        kind=kind,
        value=value,
        created_at=now,
    )
    if claimed.first() is None:
        await run.rows(run.sql.drop_customer, customer_id=customer_id)
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
    run: _Run,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    data: InboundMessage,
    thread: _Thread,
    sent_at: datetime,
    now: datetime,
) -> tuple[_Thread, bool]:
    """A new open conversation that already counts the message being stored (True), or
    the one a concurrent request opened first for this customer (we waited for its
    commit; False)."""
    conversation_id = uuid7()
    subject = data.subject or data.text.split("\n", 1)[0][:120]
    opened = await run.rows(
        run.sql.open_thread,
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
    if opened.first() is None:
        row = (
            await run.rows(
                run.sql.by_customer, customer_id=thread.customer_id, channel_id=data.channel_id
            )
        ).one()
        if row.conversation_id is None:
            raise RuntimeError(f"customer {thread.customer_id}'s thread conflicted but is gone")
        return _Thread(row.id, row.conversation_id, row.status), False
    await recorder.record(
        DomainEvent.CONVERSATION_OPENED,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation_id,
        payload={"customer_id": str(thread.customer_id), "channel_id": str(data.channel_id)},
        first=True,
    )
    return _Thread(thread.customer_id, conversation_id, ConversationStatus.OPEN.value), True


async def receive(
    session: AsyncSession, recorder: EventRecorder, tenant_id: uuid.UUID, data: InboundMessage
) -> InboundOutcome:
    run = _Run(session)
    channel = await _channel(run, tenant_id, data)
    if not channel.is_active:
        raise Conflict(f"channel {data.channel_id} is disabled", code="channel_disabled")
    if channel.message_id is not None:
        return _stored(channel)

    thread = await _resolve(run, recorder, tenant_id, channel, data)
    now = utcnow()
    sent_at = data.sent_at or now
    opened = False
    if thread.conversation_id is None:
        thread, opened = await _open_thread(run, recorder, tenant_id, data, thread, sent_at, now)
    conversation_id = thread.conversation_id
    assert conversation_id is not None
    message: dict[str, Any] = {
        "id": uuid7(),
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
    # An unset JSON column (delivery_error) stays SQL NULL, not JSON null.
    stored = await run.rows(
        run.sql.store_message,
        tenant_id=tenant_id,
        metadata=data.metadata,
        updated_at=now,
        **message,
    )
    if stored.first() is None:
        # A concurrent request stored the same provider id first (we waited for its
        # commit): what this one wrote (a customer, a thread) goes, theirs is the answer.
        await session.rollback()
        again = await _channel(run, tenant_id, data)
        if again.message_id is None:
            raise RuntimeError(f"message {data.provider_message_id!r} conflicted but is gone")
        return _stored(again)
    if not opened:
        count = run.sql.count_and_reopen if thread.status in _REOPENS else run.sql.count_message
        await run.rows(count, conversation_id=conversation_id, sent_at=sent_at, now=now)
    await recorder.record(
        DomainEvent.MESSAGE_RECEIVED,
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation_id,
        payload=_payload(message, thread.customer_id),
    )
    await session.commit()
    return InboundOutcome(
        True, {**message, "delivery_error": None}, conversation_id, thread.customer_id
    )


def message_payload(message: Message, conversation: Conversation) -> dict[str, Any]:
    """`message.received` / `message.sent` data from a Message and its Conversation."""
    fields = {
        name: getattr(message, name)
        for name in ("id", "channel_id", "direction", "sender_type", "text", "content_type")
    }
    return _payload(
        {**fields, "conversation_id": conversation.id, "sent_at": message.sent_at},
        conversation.customer_id,
    )


def _payload(message: dict[str, Any], customer_id: uuid.UUID) -> dict[str, Any]:
    return {
        "message_id": str(message["id"]),
        "conversation_id": str(message["conversation_id"]),
        "customer_id": str(customer_id),
        "channel_id": str(message["channel_id"]),
        "direction": message["direction"],
        "sender_type": message["sender_type"],
        "text": message["text"],
        "content_type": message["content_type"],
        "sent_at": message["sent_at"].isoformat(),
    }
