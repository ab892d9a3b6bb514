"""A tenant's intent taxonomy: the default intents (each on or off) and its own intents.

A `tenant_intents` row named like a default intent only switches it; any other name is a
custom intent, classified few-shot from its description and examples. No row: the default
intent is on."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, NotFound
from api.schemas.intents import IntentCreate, IntentPublic, IntentUpdate
from core.domain.intents import TenantIntent
from models.service import CustomIntentSpec, TenantTaxonomy
from models.taxonomy import INTENT_DESCRIPTIONS, INTENT_LABELS

MAX_CUSTOM_INTENTS = 50


async def _rows(session: AsyncSession, tenant_id: uuid.UUID) -> list[TenantIntent]:
    query = select(TenantIntent).where(TenantIntent.tenant_id == tenant_id)
    return list((await session.scalars(query.order_by(TenantIntent.name))).all())


def _public(row: TenantIntent | None, name: str) -> IntentPublic:
    if name in INTENT_LABELS:
        enabled = row.is_enabled if row is not None else True
        return IntentPublic(
            name=name,
            kind="default",
            enabled=enabled,
            description=INTENT_DESCRIPTIONS[name],
            examples=[],
        )
    assert row is not None
    return IntentPublic(
        name=row.name,
        kind="custom",
        enabled=row.is_enabled,
        description=row.description,
        examples=[str(e) for e in row.examples],
    )


async def list_intents(session: AsyncSession, tenant_id: uuid.UUID) -> list[IntentPublic]:
    """The 16 default intents (taxonomy order), then the tenant's own by name."""
    rows = {row.name: row for row in await _rows(session, tenant_id)}
    defaults = [_public(rows.get(name), name) for name in INTENT_LABELS]
    custom = [_public(row, name) for name, row in rows.items() if name not in INTENT_LABELS]
    return defaults + custom


async def tenant_taxonomy(session: AsyncSession, tenant_id: uuid.UUID) -> TenantTaxonomy:
    """What the intent model needs: switched-off defaults and enabled custom intents, in a
    stable order (the model caches one classifier per distinct taxonomy)."""
    rows = await _rows(session, tenant_id)
    return TenantTaxonomy(
        disabled=tuple(r.name for r in rows if r.name in INTENT_LABELS and not r.is_enabled),
        custom=tuple(
            CustomIntentSpec(r.name, r.description, tuple(str(e) for e in r.examples))
            for r in rows
            if r.name not in INTENT_LABELS and r.is_enabled
        ),
    )


async def create_intent(
    session: AsyncSession, tenant_id: uuid.UUID, data: IntentCreate
) -> IntentPublic:
    if data.name in INTENT_LABELS:
        raise Conflict(
            f"{data.name!r} is a default intent: switch it with PATCH /v1/intents/{data.name}",
            code="default_intent",
        )
    count = await session.scalar(
        select(func.count(TenantIntent.id)).where(
            TenantIntent.tenant_id == tenant_id, TenantIntent.name.not_in(INTENT_LABELS)
        )
    )
    if (count or 0) >= MAX_CUSTOM_INTENTS:
        raise Conflict(
            f"a tenant may have at most {MAX_CUSTOM_INTENTS} custom intents",
            code="too_many_intents",
        )
    row = TenantIntent(
        tenant_id=tenant_id,
        name=data.name,
        description=data.description,
        examples=list(data.examples),
        is_enabled=data.enabled,
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"intent {data.name!r} already exists", code="duplicate_intent") from exc
    return _public(row, row.name)


async def _row(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> TenantIntent | None:
    return await session.scalar(
        select(TenantIntent).where(TenantIntent.tenant_id == tenant_id, TenantIntent.name == name)
    )


def _changes(data: IntentUpdate) -> dict[str, Any]:
    changes = data.model_dump(exclude_unset=True)
    if nulls := sorted(k for k, v in changes.items() if v is None):
        raise BadRequest(f"{', '.join(nulls)} cannot be null", code="null_not_allowed")
    return changes


async def update_intent(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, data: IntentUpdate
) -> IntentPublic:
    """A default intent: only `enabled`. A custom one: description, examples, enabled."""
    changes = _changes(data)
    row = await _row(session, tenant_id, name)
    if name in INTENT_LABELS:
        if set(changes) - {"enabled"}:
            raise BadRequest(
                "a default intent can only be switched on or off (`enabled`)",
                code="default_intent",
            )
        if row is None:
            row = TenantIntent(tenant_id=tenant_id, name=name, description="", examples=[])
            session.add(row)
    elif row is None:
        raise NotFound(f"intent {name!r} not found")
    if "enabled" in changes:
        row.is_enabled = changes["enabled"]
    if "description" in changes:
        row.description = changes["description"]
    if "examples" in changes:
        row.examples = list(changes["examples"])
    try:
        await session.commit()
    except IntegrityError as exc:  # two first toggles of one default intent at once
        await session.rollback()
        raise Conflict(f"intent {name!r} changed concurrently: retry", code="conflict") from exc
    return _public(row, name)


async def delete_intent(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> None:
    if name in INTENT_LABELS:
        raise BadRequest(
            f'{name!r} is a default intent: switch it off with PATCH {{"enabled": false}}',
            code="default_intent",
        )
    row = await _row(session, tenant_id, name)
    if row is None:
        raise NotFound(f"intent {name!r} not found")
    await session.delete(row)
    await session.commit()
