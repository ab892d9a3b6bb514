"""Channels (inboxes) and SLA policies: tenant configuration managed by admins."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import select

from api.deps import Admin, SessionDep, Viewer
from api.schemas.customers import ChannelCreate, ChannelPublic, ChannelUpdate
from api.schemas.tickets import SlaPolicyCreate, SlaPolicyPublic, SlaPolicyUpdate
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
