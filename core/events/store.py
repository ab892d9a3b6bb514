"""The append-only event store and the transactional outbox.

`EventRecorder.record` adds both rows to the caller's transaction, so they commit or roll
back with the change they announce: there is no window where one exists without the other."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Connection,
    Index,
    Insert,
    Integer,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    text,
    union_all,
)
from sqlalchemy.event import listens_for
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from core.db.base import Base, IdMixin
from core.db.types import JsonType, UTCDateTime, utcnow, uuid7
from core.events.types import DomainEvent, topic_for

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class EventRecord(IdMixin, Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("aggregate_type", "aggregate_id", "aggregate_version"),
        Index(None, "tenant_id", "aggregate_type", "aggregate_id"),
        Index(None, "correlation_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    aggregate_type: Mapped[str] = mapped_column(String(32), nullable=False)
    aggregate_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    aggregate_version: Mapped[int] = mapped_column(Integer, nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    causation_id: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str | None] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class OutboxRecord(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(_BigIntId, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, unique=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    topic: Mapped[str] = mapped_column(String(128), nullable=False)
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False)
    headers: Mapped[dict[str, str]] = mapped_column(JsonType, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class EventContext:
    """Who caused a change and which request it belongs to, carried into every event."""

    def __init__(
        self,
        *,
        correlation_id: str | None = None,
        actor_type: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        self.correlation_id = correlation_id or uuid.uuid4().hex
        self.actor_type = actor_type
        self.actor_id = actor_id


# Rows recorded in a session and not yet written: (transaction, event row, outbox row).
_PENDING = "relaydesk.pending_events"
_events = cast(Table, EventRecord.__table__)
_outbox = cast(Table, OutboxRecord.__table__)
_LAST_VERSION = select(func.coalesce(func.max(_events.c.aggregate_version), 0)).where(
    _events.c.aggregate_type == bindparam("aggregate_type"),
    _events.c.aggregate_id == bindparam("aggregate_id"),
)


class EventRecorder:
    """Appends events and their outbox rows inside the caller's transaction.

    Callers update (and so lock, on PostgreSQL) the aggregate's row before recording, which
    makes `max(version) + 1` safe against concurrent writers of the same aggregate.

    The rows are written when the transaction (or the savepoint they were recorded in)
    commits, all of them in one statement on PostgreSQL; a rollback drops them. That is
    what adding ORM objects did, without the unit of work's cost on every write request."""

    def __init__(self, session: AsyncSession, context: EventContext) -> None:
        self.session = session
        self.context = context
        self._last: uuid.UUID | None = None
        self._versions: dict[tuple[str, uuid.UUID], int] = {}

    async def preload_versions(self, aggregate_type: str, ids: list[uuid.UUID]) -> None:
        """Read the current versions of many aggregates in one query (a consumer appending
        events to a batch's conversations), instead of one query each on first record."""
        missing = [i for i in ids if (aggregate_type, i) not in self._versions]
        if not missing:
            return
        rows = await self.session.execute(
            select(EventRecord.aggregate_id, func.max(EventRecord.aggregate_version))
            .where(
                EventRecord.aggregate_type == aggregate_type,
                EventRecord.aggregate_id.in_(missing),
            )
            .group_by(EventRecord.aggregate_id)
        )
        found = {aggregate_id: int(version) for aggregate_id, version in rows.all()}
        for aggregate_id in missing:
            self._versions[(aggregate_type, aggregate_id)] = found.get(aggregate_id, 0)

    async def _next_version(self, aggregate_type: str, aggregate_id: uuid.UUID) -> int:
        key = (aggregate_type, aggregate_id)
        if key not in self._versions:
            current = await self.session.scalar(
                _LAST_VERSION, {"aggregate_type": aggregate_type, "aggregate_id": aggregate_id}
            )
            self._versions[key] = int(current or 0)
        self._versions[key] += 1
        return self._versions[key]

    async def record(
        self,
        event: DomainEvent,
        *,
        tenant_id: uuid.UUID,
        aggregate_type: str,
        aggregate_id: uuid.UUID,
        payload: dict[str, Any],
        key: uuid.UUID | None = None,
        first: bool = False,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> uuid.UUID:
        """Append an event; returns its id. `first=True` says the aggregate was created in
        this transaction, so it has no events yet and the version query can be skipped.
        `correlation_id` and `causation_id` override the context's (a consumer reacting to
        another event)."""
        if first:
            self._versions.setdefault((aggregate_type, aggregate_id), 0)
        version = await self._next_version(aggregate_type, aggregate_id)
        event_id = uuid7()
        row: dict[str, Any] = {
            "id": event_id,
            "tenant_id": tenant_id,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "aggregate_version": version,
            "event_type": event.value,
            "payload": payload,
            "correlation_id": correlation_id or self.context.correlation_id,
            "causation_id": causation_id or (str(self._last) if self._last is not None else None),
            "actor_type": self.context.actor_type,
            "actor_id": self.context.actor_id,
            "occurred_at": utcnow(),
        }
        outbox = {
            "event_id": row["id"],
            "tenant_id": tenant_id,
            "topic": topic_for(event).value,
            "key": str(key or aggregate_id),
            "event_type": event.value,
            "payload": _envelope(row),
            "headers": {"event_type": event.value, "correlation_id": row["correlation_id"] or ""},
            "created_at": row["occurred_at"],
            "attempts": 0,
        }
        sync = self.session.sync_session
        if not sync.in_transaction():
            sync.begin()  # as adding an ORM object would: a rollback then drops the rows
        transaction = sync.get_nested_transaction() or sync.get_transaction()
        sync.info.setdefault(_PENDING, []).append((transaction, row, outbox))
        # Read after commit to wake the outbox relay without polling.
        sync.info["outbox_written"] = True
        self._last = event_id
        return event_id


Rows = list[dict[str, Any]]
_EVENT_COLUMNS = (
    "id",
    "tenant_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "event_type",
    "payload",
    "correlation_id",
    "causation_id",
    "actor_type",
    "actor_id",
    "occurred_at",
)
_OUTBOX_COLUMNS = (
    "event_id",
    "tenant_id",
    "topic",
    "key",
    "event_type",
    "payload",
    "headers",
    "created_at",
    "attempts",
)


@functools.cache
def _insert_both(count: int) -> Insert:
    """PostgreSQL: `count` events and their outbox rows in one round trip, the events
    INSERT as a data-modifying CTE of the outbox one. Built once per row count from named
    parameters, as INSERT ... SELECT: SQLAlchemy caches its compiled form (a multi-row
    VALUES is compiled again on every execution)."""

    def rows(
        table: Table, prefix: str, columns: tuple[str, ...]
    ) -> Select[Any] | CompoundSelect[Any]:
        each = [
            select(*(bindparam(f"{prefix}{i}_{c}", type_=table.c[c].type) for c in columns))
            for i in range(count)
        ]
        return each[0] if count == 1 else union_all(*each)

    events = insert(_events).from_select(_EVENT_COLUMNS, rows(_events, "e", _EVENT_COLUMNS))
    outbox = insert(_outbox).from_select(_OUTBOX_COLUMNS, rows(_outbox, "o", _OUTBOX_COLUMNS))
    return outbox.add_cte(events.cte("new_events"))


def _write(connection: Connection, events: Rows, outbox: Rows) -> None:
    if connection.dialect.name == "postgresql":
        params = {f"e{i}_{c}": row[c] for i, row in enumerate(events) for c in _EVENT_COLUMNS}
        params.update(
            {f"o{i}_{c}": row[c] for i, row in enumerate(outbox) for c in _OUTBOX_COLUMNS}
        )
        connection.execute(_insert_both(len(events)), params)
    else:
        connection.execute(insert(_events), events)
        connection.execute(insert(_outbox), outbox)


@listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Write what was recorded, as the transaction or savepoint commits."""
    pending = session.info.pop(_PENDING, None)
    if pending:
        _write(session.connection(), [p[1] for p in pending], [p[2] for p in pending])


@listens_for(Session, "after_transaction_end")
def _drop_rolled_back(session: Session, transaction: SessionTransaction) -> None:
    """Rows still pending when their transaction ends were rolled back with it."""
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if transaction.parent is None:
        del session.info[_PENDING]
    else:
        session.info[_PENDING] = [p for p in pending if p[0] is not transaction]


def _envelope(row: dict[str, Any]) -> dict[str, Any]:
    """The versioned message consumers receive."""
    occurred: datetime = row["occurred_at"]
    return {
        "schema_version": 1,
        "event_id": str(row["id"]),
        "event_type": row["event_type"],
        "tenant_id": str(row["tenant_id"]),
        "aggregate_type": row["aggregate_type"],
        "aggregate_id": str(row["aggregate_id"]),
        "aggregate_version": row["aggregate_version"],
        "occurred_at": occurred.isoformat(),
        "correlation_id": row["correlation_id"],
        "causation_id": row["causation_id"],
        "data": row["payload"],
    }
