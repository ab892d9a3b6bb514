"""Channels and SLA policies: per-tenant configuration objects."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Unprocessable
from api.schemas.customers import ChannelCreate, ChannelUpdate
from api.schemas.tickets import SlaPolicyCreate, SlaPolicyUpdate
from api.services.channel_cache import WEBHOOK_CHANNELS
from connectors.configs import validate_config
from core.domain.channels import Channel
from core.domain.enums import ChannelType
from core.domain.sla import SlaPolicy

from .common import get_owned


def _checked_config(channel_type: ChannelType, config: dict[str, Any]) -> dict[str, Any]:
    """The config as the channel type's model accepts it; 422 with each reason if not."""
    try:
        return validate_config(channel_type, config)
    except ValidationError as exc:
        reasons = [
            {"field": ".".join(str(p) for p in e["loc"]) or "config", "message": e["msg"]}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{r['field']}: {r['message']}" for r in reasons)
        raise Unprocessable(
            f"invalid {channel_type.value} channel config: {summary}",
            code="invalid_channel_config",
            details=reasons,
        ) from None


async def save_channel(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    data: ChannelCreate | ChannelUpdate,
    channel_id: uuid.UUID | None = None,
) -> Channel:
    if channel_id is None:
        assert isinstance(data, ChannelCreate)
        config = _checked_config(data.type, data.config)
        channel = Channel(tenant_id=tenant_id, type=data.type.value, name=data.name, config=config)
        session.add(channel)
    else:
        channel = await get_owned(session, Channel, channel_id, tenant_id, what="channel")
        fields = data.model_dump(exclude_unset=True, exclude_none=True)
        if "config" in fields:
            # A secret shown as "***" and sent back unchanged keeps its stored value.
            fields["config"] = _checked_config(
                ChannelType(channel.type),
                {
                    k: channel.config.get(k) if v == "***" else v
                    for k, v in fields["config"].items()
                },
            )
        for name, value in fields.items():
            setattr(channel, name, value)
    await session.commit()
    WEBHOOK_CHANNELS.clear()
    return channel


async def save_sla_policy(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    data: SlaPolicyCreate | SlaPolicyUpdate,
    policy_id: uuid.UUID | None = None,
) -> SlaPolicy:
    if policy_id is None:
        policy = SlaPolicy(tenant_id=tenant_id)
        session.add(policy)
    else:
        policy = await get_owned(session, SlaPolicy, policy_id, tenant_id, what="SLA policy")
    for name, value in data.model_dump(exclude_unset=True, mode="json").items():
        if name != "business_hours" and value is None:
            continue
        setattr(policy, name, value)
    await session.flush()
    if policy.is_default:
        # One default per tenant: the newest choice wins.
        await session.execute(
            update(SlaPolicy)
            .where(SlaPolicy.tenant_id == tenant_id, SlaPolicy.id != policy.id)
            .values(is_default=False)
            .execution_options(synchronize_session=False)
        )
    await session.commit()
    return policy
