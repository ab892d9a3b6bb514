"""Sign-in: email and password for a bearer token."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SessionDep, SettingsDep
from api.schemas.tenancy import TokenRequest, TokenResponse
from api.services import tenancy
from core.domain.enums import Role
from core.security import issue_token

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenResponse)
async def create_token(
    body: TokenRequest, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    """Exchange an email and password for a bearer token."""
    user = await tenancy.authenticate(session, str(body.email), body.password, body.tenant)
    token = issue_token(settings, user_id=user.id, tenant_id=user.tenant_id, role=user.role)
    return TokenResponse(
        access_token=token,
        expires_in=settings.auth.token_ttl_minutes * 60,
        role=Role(user.role),
        tenant_id=user.tenant_id,
        user_id=user.id,
    )
