"""IMAP polling of email channels: each new message of the folder goes through the same
ingestion as a pushed one, and the folder's cursor (UIDVALIDITY, last UID) moves in the
transaction that stores it, so a poller stopped at any point resumes without losing or
repeating a message (a message stored but not yet counted is recognized by its
Message-ID)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.services.email_inbound import EmailResult, ingest
from connectors.email.config import EmailConfig, ImapConfig
from connectors.email.imap import FolderBatch, ImapFailure, fetch_new
from connectors.email.parse import MalformedEmail
from core.db.engine import dialect_name
from core.db.types import utcnow
from core.domain.channels import Channel, MailboxCursor
from core.domain.enums import ChannelType
from core.events.store import EventContext, EventRecorder
from core.runtime import Runtime

logger = logging.getLogger(__name__)


@dataclass
class PollResult(EmailResult):
    fetched: int = 0
    malformed: int = 0
    more: bool = False
    errors: list[str] = field(default_factory=list)


async def _cursor(
    session: AsyncSession, channel_id: uuid.UUID, folder: str
) -> tuple[int | None, int]:
    row = await session.get(MailboxCursor, (channel_id, folder))
    return (row.uidvalidity, row.last_uid) if row is not None else (None, 0)


async def _advance(
    session: AsyncSession, channel_id: uuid.UUID, folder: str, uidvalidity: int, uid: int
) -> None:
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    values: dict[str, Any] = {
        "channel_id": channel_id,
        "folder": folder,
        "uidvalidity": uidvalidity,
        "last_uid": uid,
        "updated_at": utcnow(),
    }
    statement = insert(MailboxCursor).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["channel_id", "folder"],
            set_={k: statement.excluded[k] for k in ("uidvalidity", "last_uid", "updated_at")},
        )
    )


async def poll_channel(runtime: Runtime, channel_id: uuid.UUID, *, limit: int = 100) -> PollResult:
    """Fetch and store the channel's new mail once."""
    result = PollResult()
    async with runtime.sessions() as session:
        channel = await session.get(Channel, channel_id)
        if channel is None or channel.type != ChannelType.EMAIL.value or not channel.is_active:
            result.errors.append(f"no active email channel {channel_id}")
            return result
        try:
            config = EmailConfig.model_validate(channel.config)
        except ValidationError as exc:
            result.errors.append(f"channel {channel_id} config is invalid: {exc}")
            return result
        if config.imap is None:
            result.errors.append(f"channel {channel_id} has no IMAP settings")
            return result
        imap: ImapConfig = config.imap
        uidvalidity, last_uid = await _cursor(session, channel_id, imap.folder)
        timeout = runtime.settings.channels.http_timeout_s
    try:
        batch: FolderBatch = await asyncio.to_thread(
            fetch_new, imap, uidvalidity, last_uid, limit=limit, timeout=timeout
        )
    except ImapFailure as exc:
        logger.warning("email channel %s: %s", channel_id, exc)
        result.errors.append(str(exc))
        return result
    result.more = batch.more
    context = EventContext(actor_type="channel", actor_id=str(channel_id))
    for mail in batch.messages:
        async with runtime.sessions() as session:
            channel = await session.get(Channel, channel_id)
            assert channel is not None
            recorder = EventRecorder(session, context)
            # Written first so the commit that stores the message also moves the cursor;
            # written again after, for the messages that store nothing.
            await _advance(session, channel_id, imap.folder, batch.uidvalidity, mail.uid)
            try:
                await ingest(session, recorder, runtime, channel, config, mail.raw, result)
            except MalformedEmail as exc:
                # Kept in the mailbox for a person; the poller moves past it.
                logger.warning("email channel %s: UID %s not stored: %s", channel_id, mail.uid, exc)
                result.malformed += 1
                await session.rollback()
            await _advance(session, channel_id, imap.folder, batch.uidvalidity, mail.uid)
            await session.commit()
        result.fetched += 1
    return result


async def email_channels(runtime: Runtime) -> list[uuid.UUID]:
    """The active email channels that have a mailbox to poll."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Channel.id, Channel.config).where(
                Channel.type == ChannelType.EMAIL.value, Channel.is_active.is_(True)
            )
        )
        return [row.id for row in rows if isinstance(row.config, dict) and row.config.get("imap")]


async def poll_all(runtime: Runtime, *, limit: int = 100) -> dict[uuid.UUID, PollResult]:
    return {
        cid: await poll_channel(runtime, cid, limit=limit) for cid in await email_channels(runtime)
    }
