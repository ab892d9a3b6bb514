"""Channels (inboxes) and SLA policies: tenant configuration managed by admins."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import select

from api.deps import Admin, Agent, RuntimeDep, SessionDep, Viewer
from api.errors import BadGateway
from api.schemas.customers import ChannelCreate, ChannelPublic, ChannelUpdate
from api.schemas.templates import TemplateList
from api.schemas.tickets import SlaPolicyCreate, SlaPolicyPublic, SlaPolicyUpdate
from api.services import templates
from api.services.common import get_owned
from api.services.settings_objects import save_channel, save_sla_policy
from core.domain.channels import Channel
from core.domain.sla import SlaPolicy

router = APIRouter(tags=["channels and SLA policies"])


@router.get("/v1/channels", response_model=list[ChannelPublic])
async def list_channels(session: SessionDep, principal: Viewer) -> list[Channel]:
    """The tenant's channels; secrets in their config are never shown."""
    rows = await session.scalars(
        select(Channel).where(Channel.tenant_id == principal.tenant_id).order_by(Channel.name)
    )
    return list(rows.all())


@router.post("/v1/channels", response_model=ChannelPublic, status_code=status.HTTP_201_CREATED)
async def create_channel(body: ChannelCreate, session: SessionDep, principal: Admin) -> Channel:
    """Create a channel of a type (whatsapp, instagram, email, web, api) with its config."""
    return await save_channel(session, principal.tenant_id, body)


@router.get("/v1/channels/{channel_id}", response_model=ChannelPublic)
async def get_channel(channel_id: uuid.UUID, session: SessionDep, principal: Viewer) -> Channel:
    """One channel."""
    return await get_owned(session, Channel, channel_id, principal.tenant_id, what="channel")


@router.patch("/v1/channels/{channel_id}", response_model=ChannelPublic)
async def update_channel(
    channel_id: uuid.UUID, body: ChannelUpdate, session: SessionDep, principal: Admin
) -> Channel:
    """Rename, reconfigure, enable or disable a channel."""
    return await save_channel(session, principal.tenant_id, body, channel_id)


async def _templates(session: SessionDep, channel: Channel) -> TemplateList:
    sync, rows = await templates.listing(session, channel)
    return TemplateList.model_validate(
        {
            "channel_id": channel.id,
            "synced_at": sync.synced_at if sync else None,
            "attempted_at": sync.attempted_at if sync else None,
            "error": sync.error if sync else None,
            "items": rows,
        }
    )


@router.get("/v1/channels/{channel_id}/templates", response_model=TemplateList)
async def list_templates(
    channel_id: uuid.UUID, session: SessionDep, principal: Agent
) -> TemplateList:
    """A WhatsApp channel's message templates, as last synced from its business account."""
    channel = await get_owned(session, Channel, channel_id, principal.tenant_id, what="channel")
    templates.whatsapp_only(channel)
    return await _templates(session, channel)


@router.post("/v1/channels/{channel_id}/templates/sync", response_model=TemplateList)
async def sync_templates(
    channel_id: uuid.UUID, session: SessionDep, principal: Admin, runtime: RuntimeDep
) -> TemplateList:
    """Read the channel's message templates from its WhatsApp business account now (the
    delivery worker also does every `RELAYDESK_CHANNELS__TEMPLATE_SYNC_INTERVAL_S`)."""
    channel = await get_owned(session, Channel, channel_id, principal.tenant_id, what="channel")
    templates.whatsapp_only(channel)
    # The sync writes in sessions of its own: this one's transaction (on SQLite, the
    # database's write lock) ends first.
    await session.rollback()
    try:
        await templates.sync_templates(runtime, channel_id)
    except templates.TemplateSyncFailed as exc:
        raise BadGateway(
            f"the business account's templates could not be read: {exc.message}",
            details=exc.error,
        ) from exc
    channel = await get_owned(session, Channel, channel_id, principal.tenant_id, what="channel")
    return await _templates(session, channel)


@router.get("/v1/sla-policies", response_model=list[SlaPolicyPublic])
async def list_policies(session: SessionDep, principal: Viewer) -> list[SlaPolicy]:
    """The tenant's SLA policies."""
    rows = await session.scalars(
        select(SlaPolicy).where(SlaPolicy.tenant_id == principal.tenant_id).order_by(SlaPolicy.name)
    )
    return list(rows.all())


@router.post(
    "/v1/sla-policies", response_model=SlaPolicyPublic, status_code=status.HTTP_201_CREATED
)
async def create_policy(body: SlaPolicyCreate, session: SessionDep, principal: Admin) -> SlaPolicy:
    """Create a policy: targets per priority and an optional business-hours calendar."""
    return await save_sla_policy(session, principal.tenant_id, body)


@router.get("/v1/sla-policies/{policy_id}", response_model=SlaPolicyPublic)
async def get_policy(policy_id: uuid.UUID, session: SessionDep, principal: Viewer) -> SlaPolicy:
    """One SLA policy."""
    return await get_owned(session, SlaPolicy, policy_id, principal.tenant_id, what="SLA policy")


@router.patch("/v1/sla-policies/{policy_id}", response_model=SlaPolicyPublic)
async def update_policy(
    policy_id: uuid.UUID, body: SlaPolicyUpdate, session: SessionDep, principal: Admin
) -> SlaPolicy:
    """Change a policy; tickets pick up new targets at their next change."""
    return await save_sla_policy(session, principal.tenant_id, body, policy_id)


@router.delete("/v1/sla-policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_policy(policy_id: uuid.UUID, session: SessionDep, principal: Admin) -> None:
    """Delete a policy; its tickets fall back to the tenant's default."""
    policy = await get_owned(session, SlaPolicy, policy_id, principal.tenant_id, what="SLA policy")
    await session.delete(policy)
    await session.commit()
