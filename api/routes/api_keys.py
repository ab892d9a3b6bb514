"""API keys for integrations: created by admins, shown once, stored hashed."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import select

from api.deps import Admin, SessionDep
from api.schemas.tenancy import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from api.services import tenancy
from api.services.common import get_owned
from core.domain.tenancy import ApiKey

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.get("", response_model=list[ApiKeyPublic])
async def list_keys(session: SessionDep, principal: Admin) -> list[ApiKey]:
    """The tenant's keys (their prefixes only)."""
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id).order_by(ApiKey.created_at)
    )
    return list(rows.all())


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_key(body: ApiKeyCreate, session: SessionDep, principal: Admin) -> ApiKeyCreated:
    """Create a key; the response holds the only copy of it."""
    created = await tenancy.create_api_key(session, principal.tenant_id, body, principal.user_id)
    public = ApiKeyPublic.model_validate(created.row)
    return ApiKeyCreated(**public.model_dump(), key=created.plaintext)


@router.get("/{key_id}", response_model=ApiKeyPublic)
async def get_key(key_id: uuid.UUID, session: SessionDep, principal: Admin) -> ApiKey:
    """One key's metadata."""
    return await get_owned(session, ApiKey, key_id, principal.tenant_id, what="API key")


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: uuid.UUID, session: SessionDep, principal: Admin) -> None:
    """Revoke a key; requests with it get 401 from now on."""
    await tenancy.revoke_api_key(session, principal.tenant_id, key_id)
