"""Provider statuses that arrive before their reply's provider id is recorded.

The delivery worker sends a reply, then records the provider's id for it; Meta may post
the `sent` (or even `delivered`) webhook for that id in between. Such a status is held
here and applied when the worker records the id, in the same transaction; one held for
longer than a day belongs to no reply of ours (a message sent from another tool on the
same number) and is dropped."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.engine import dialect_name
from core.db.types import utcnow
from core.domain.channels import EarlyStatus

KEEP = timedelta(days=1)


async def hold(
    session: AsyncSession,
    channel_id: uuid.UUID,
    provider_message_id: str,
    status: str,
    errors: list[dict[str, Any]],
) -> None:
    now = utcnow()
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    await session.execute(
        insert(EarlyStatus)
        .values(
            channel_id=channel_id,
            provider_message_id=provider_message_id,
            status=status,
            errors=errors,
            received_at=now,
        )
        .on_conflict_do_nothing()
    )
    await session.execute(delete(EarlyStatus).where(EarlyStatus.received_at < now - KEEP))


async def take(
    session: AsyncSession, channel_id: uuid.UUID, provider_message_id: str
) -> list[EarlyStatus]:
    """The statuses held for this id, oldest first, removed from the hold."""
    held = list(
        (
            await session.scalars(
                select(EarlyStatus)
                .where(
                    EarlyStatus.channel_id == channel_id,
                    EarlyStatus.provider_message_id == provider_message_id,
                )
                .order_by(EarlyStatus.received_at)
            )
        ).all()
    )
    if held:
        await session.execute(
            delete(EarlyStatus).where(
                EarlyStatus.channel_id == channel_id,
                EarlyStatus.provider_message_id == provider_message_id,
            )
        )
    return held
