"""WhatsApp message templates: synced from the business account, listed for agents, and
the check a template reply passes before it is stored.

A sync replaces the channel's stored templates in one transaction (Meta's list is the
truth: a template deleted there disappears here). A channel whose templates were never
synced sends template replies unchecked, with a warning on the message: the sync needs
the `whatsapp_business_management` permission, which a token made for messaging alone
lacks, and refusing every template then would leave no way to reach a customer outside
the 24-hour window. Meta still refuses an unknown template, and its code shows on the
message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Conflict, Unprocessable
from connectors.meta.graph import GraphError, RetryPolicy
from connectors.whatsapp.config import WhatsAppConfig
from connectors.whatsapp.graph import GraphClient
from connectors.whatsapp.templates import SyncedTemplate, mismatch
from core.db.engine import dialect_name
from core.db.types import utcnow, uuid7
from core.domain.channels import Channel, MessageTemplate, TemplateSync
from core.domain.enums import ChannelType
from core.runtime import Runtime

UNCHECKED = (
    "template sent unchecked: this channel's templates were never synced "
    "(POST /v1/channels/{channel_id}/templates/sync)"
)


class TemplateSyncFailed(Exception):
    """The business account could not be read; the reason is kept on the sync record."""

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error or {}


@dataclass(frozen=True)
class SyncResult:
    channel_id: uuid.UUID
    template_count: int
    synced_at: datetime


async def _record(
    session: AsyncSession,
    channel_id: uuid.UUID,
    *,
    synced_at: datetime | None,
    count: int,
    error: str | None,
) -> None:
    insert_ = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    values: dict[str, Any] = {
        "channel_id": channel_id,
        "template_count": count,
        "attempted_at": utcnow(),
        "error": error,
    }
    changed = ["template_count", "attempted_at", "error"]
    if synced_at is not None:
        values["synced_at"] = synced_at
        changed.append("synced_at")
    statement = insert_(TemplateSync).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["channel_id"], set_={k: statement.excluded[k] for k in changed}
        )
    )


def whatsapp_only(channel: Channel) -> None:
    """Conflict (409) for a channel that has no message templates."""
    if channel.type != ChannelType.WHATSAPP.value:
        raise Conflict(
            f"channel {channel.id} is a {channel.type} channel: only WhatsApp has templates",
            code="unsupported_channel",
        )


async def _whatsapp_channel(session: AsyncSession, channel_id: uuid.UUID) -> Channel:
    channel = await session.get(Channel, channel_id)
    if channel is None:
        raise LookupError(f"no channel {channel_id}")
    whatsapp_only(channel)
    return channel


async def sync_templates(runtime: Runtime, channel_id: uuid.UUID) -> SyncResult:
    """Read every template of the channel's business account and store them in place of
    the previous ones; TemplateSyncFailed (recorded) when Meta cannot be read."""
    async with runtime.sessions() as session:
        channel = await _whatsapp_channel(session, channel_id)
        config = WhatsAppConfig.model_validate(channel.config)
    policy = RetryPolicy.of(runtime.settings.channels)
    found: dict[tuple[str, str], SyncedTemplate] = {}
    try:
        async with GraphClient(config, policy) as graph:
            async for payload in graph.message_templates():
                template = SyncedTemplate.of(payload)
                if template is not None:
                    found[(template.name, template.language)] = template
    except GraphError as exc:
        async with runtime.sessions() as session:
            await _record(session, channel_id, synced_at=None, count=0, error=str(exc))
            await session.commit()
        raise TemplateSyncFailed(f"Meta answered: {exc.message}", exc.as_dict()) from exc
    now = utcnow()
    async with runtime.sessions() as session:
        # Locked first: two syncs of one channel replace its rows one after the other.
        await session.execute(select(Channel.id).where(Channel.id == channel_id).with_for_update())
        await session.execute(
            delete(MessageTemplate).where(MessageTemplate.channel_id == channel_id)
        )
        if found:
            await session.execute(
                insert(MessageTemplate),
                [
                    {
                        "id": uuid7(),
                        "tenant_id": channel.tenant_id,
                        "channel_id": channel_id,
                        "name": t.name,
                        "language": t.language,
                        "status": t.status,
                        "category": t.category,
                        "components": t.components,
                        "provider_id": t.provider_id,
                        "synced_at": now,
                    }
                    for t in found.values()
                ],
            )
        await _record(session, channel_id, synced_at=now, count=len(found), error=None)
        await session.commit()
    return SyncResult(channel_id, len(found), now)


async def due_for_sync(runtime: Runtime, interval: timedelta) -> list[uuid.UUID]:
    """Active WhatsApp channels not synced (successfully or not) within `interval`."""
    since = utcnow() - interval
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Channel.id)
            .outerjoin(TemplateSync, TemplateSync.channel_id == Channel.id)
            .where(
                Channel.type == ChannelType.WHATSAPP.value,
                Channel.is_active.is_(True),
                (TemplateSync.attempted_at.is_(None)) | (TemplateSync.attempted_at < since),
            )
            .order_by(Channel.id)
        )
        return list(rows.scalars().all())


async def listing(
    session: AsyncSession, channel: Channel
) -> tuple[TemplateSync | None, list[MessageTemplate]]:
    """The channel's sync record and its templates, by name and language."""
    sync = await session.get(TemplateSync, channel.id)
    rows = await session.scalars(
        select(MessageTemplate)
        .where(MessageTemplate.channel_id == channel.id)
        .order_by(MessageTemplate.name, MessageTemplate.language)
    )
    return sync, list(rows.all())


async def check_reply(
    session: AsyncSession, channel_id: uuid.UUID, template: dict[str, Any]
) -> list[str]:
    """Warnings for a template reply the channel may send; Unprocessable (422) with the
    reason when the synced templates say it cannot be sent."""
    sync = await session.get(TemplateSync, channel_id)
    if sync is None or sync.synced_at is None:
        return [UNCHECKED.format(channel_id=channel_id)]
    name, language = str(template["name"]), str(template.get("language") or "en_US")
    rows = (
        await session.scalars(
            select(MessageTemplate).where(
                MessageTemplate.channel_id == channel_id, MessageTemplate.name == name
            )
        )
    ).all()
    if not rows:
        raise Unprocessable(
            f"template {name!r} is not among the {sync.template_count} templates synced for "
            f"this channel at {sync.synced_at.isoformat()} (sync again if it is new)",
            code="template_not_found",
        )
    synced = next((r for r in rows if r.language == language), None)
    if synced is None:
        languages = ", ".join(sorted(r.language for r in rows))
        raise Unprocessable(
            f"template {name!r} exists in {languages}, not in {language!r}",
            code="template_language",
            details={"languages": sorted(r.language for r in rows)},
        )
    refused = mismatch(
        SyncedTemplate(
            synced.name,
            synced.language,
            synced.status,
            synced.category,
            list(synced.components),
            synced.provider_id,
        ),
        template,
    )
    if refused is not None:
        code, reason = refused
        raise Unprocessable(reason, code=code, details={"status": synced.status})
    return []
