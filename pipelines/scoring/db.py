"""Stored messages as scoring input: `relaydesk score --from-db`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from core.db.engine import create_engine, create_sessionmaker
from core.domain.channels import Channel
from core.domain.conversations import Message
from core.domain.tenancy import Tenant
from core.settings import Settings
from pipelines.scoring.readers import InputError, InputTable, RowError, text_problem

TEXT_COLUMN = "text"
COLUMNS = (
    "message_id",
    "tenant_id",
    "conversation_id",
    "channel_id",
    "channel",
    "direction",
    "created_at",
    TEXT_COLUMN,
)


async def read_messages(
    settings: Settings, since: datetime, tenant: str | None = None
) -> InputTable:
    """Messages created at or after `since` (of the tenant with this slug or id, or of all),
    oldest first, with their ids, channel type and direction. A message without text (an
    attachment alone) is reported by id, not scored."""
    engine = create_engine(settings)
    try:
        sessions = create_sessionmaker(engine)
        async with sessions() as session:
            tenant_id = await _tenant_id(session, tenant) if tenant else None
            query = (
                select(
                    Message.id,
                    Message.tenant_id,
                    Message.conversation_id,
                    Message.channel_id,
                    Channel.type,
                    Message.direction,
                    Message.created_at,
                    Message.text,
                )
                .join(Channel, Channel.id == Message.channel_id)
                .where(Message.created_at >= since)
                .order_by(Message.created_at, Message.id)
            )
            if tenant_id is not None:
                query = query.where(Message.tenant_id == tenant_id)
            rows = (await session.execute(query)).all()
    finally:
        await engine.dispose()
    table = InputTable("database", list(COLUMNS), [])
    for index, row in enumerate(rows):
        record: dict[str, Any] = dict(zip(COLUMNS, row, strict=True))
        for key in ("message_id", "tenant_id", "conversation_id", "channel_id"):
            record[key] = str(record[key])
        record["created_at"] = record["created_at"].isoformat()
        problem = text_problem(record[TEXT_COLUMN])
        if problem is not None:
            table.errors.append(RowError(problem, row=index, raw=f"message {record['message_id']}"))
            continue
        table.rows.append(record)
    return table


async def _tenant_id(session: Any, tenant: str) -> uuid.UUID:
    try:
        by_id: uuid.UUID | None = uuid.UUID(tenant)
    except ValueError:
        by_id = None
    match = or_(Tenant.slug == tenant, Tenant.id == by_id) if by_id else Tenant.slug == tenant
    found: uuid.UUID | None = await session.scalar(select(Tenant.id).where(match))
    if found is None:
        raise InputError(f"no tenant {tenant!r} (give its slug or id)")
    return found
