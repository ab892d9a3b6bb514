"""Tenants, sign-in, users, teams and API keys."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api import principal_cache
from api.errors import BadRequest, Conflict, NotFound, Unauthorized
from api.schemas.tenancy import ApiKeyCreate, TeamCreate, TeamUpdate, UserCreate, UserUpdate
from core.db.types import utcnow
from core.domain.enums import Role
from core.domain.tenancy import ApiKey, Team, Tenant, User
from core.security import (
    burn_password_check,
    generate_api_key,
    hash_password,
    verify_password,
)

from .common import get_owned


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "tenant"


async def authenticate(
    session: AsyncSession, email: str, password: str, tenant_slug: str | None
) -> User:
    query = select(User).where(User.email == email.lower(), User.is_active.is_(True))
    if tenant_slug:
        query = query.join(Tenant, Tenant.id == User.tenant_id).where(Tenant.slug == tenant_slug)
    users = list((await session.scalars(query)).all())
    if len(users) > 1:
        raise BadRequest(
            "this email has accounts in several tenants; send `tenant` too",
            code="tenant_required",
        )
    if not users:
        burn_password_check(password)
        raise Unauthorized("wrong email or password")
    if not verify_password(users[0].password_hash, password):
        raise Unauthorized("wrong email or password")
    return users[0]


async def _teams(session: AsyncSession, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> list[Team]:
    teams = [await get_owned(session, Team, i, tenant_id, what="team") for i in dict.fromkeys(ids)]
    return teams


async def _users(session: AsyncSession, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> list[User]:
    return [await get_owned(session, User, i, tenant_id, what="user") for i in dict.fromkeys(ids)]


async def create_user(session: AsyncSession, tenant_id: uuid.UUID, data: UserCreate) -> User:
    user = User(
        tenant_id=tenant_id,
        email=str(data.email).lower(),
        name=data.name,
        role=data.role.value,
        password_hash=hash_password(data.password),
        teams=await _teams(session, tenant_id, data.team_ids),
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"a user with email {data.email} already exists", code="duplicate") from exc
    return user


async def update_user(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, data: UserUpdate
) -> User:
    user = await get_owned(session, User, user_id, tenant_id, what="user")
    stops_admin = (
        user.role == Role.ADMIN
        and user.is_active
        and ((data.role is not None and data.role is not Role.ADMIN) or data.is_active is False)
    )
    if stops_admin and await _active_admins(session, tenant_id) <= 1:
        raise Conflict(
            "this is the tenant's last active admin; make someone else admin first",
            code="last_admin",
        )
    if data.name is not None:
        user.name = data.name
    if data.password is not None:
        user.password_hash = hash_password(data.password)
    if data.role is not None:
        user.role = data.role.value
    if data.is_active is not None:
        user.is_active = data.is_active
    if data.team_ids is not None:
        user.teams = await _teams(session, tenant_id, data.team_ids)
    await session.commit()
    if data.role is not None or data.is_active is not None:
        principal_cache.PRINCIPALS.clear()
    return user


async def _active_admins(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.tenant_id == tenant_id, User.role == Role.ADMIN, User.is_active.is_(True))
    )
    return int(count or 0)


async def save_team(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    data: TeamCreate | TeamUpdate,
    team: Team | None = None,
) -> Team:
    if team is None:
        team = Team(tenant_id=tenant_id)
        session.add(team)
    fields = data.model_dump(exclude_unset=True, exclude={"member_ids"})
    for name, value in fields.items():
        if value is not None:
            setattr(team, name, value)
    if isinstance(data, TeamCreate) or data.member_ids is not None:
        team.members = await _users(session, tenant_id, data.member_ids or [])
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"a team named {team.name!r} already exists", code="duplicate") from exc
    return team


@dataclass(frozen=True)
class CreatedKey:
    row: ApiKey
    plaintext: str


async def create_api_key(
    session: AsyncSession, tenant_id: uuid.UUID, data: ApiKeyCreate, created_by: uuid.UUID | None
) -> CreatedKey:
    new = generate_api_key()
    row = ApiKey(
        tenant_id=tenant_id,
        name=data.name,
        prefix=new.prefix,
        key_hash=new.key_hash,
        role=data.role.value,
        created_by_id=created_by,
    )
    session.add(row)
    await session.commit()
    return CreatedKey(row=row, plaintext=new.plaintext)


async def revoke_api_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    key = await get_owned(session, ApiKey, key_id, tenant_id, what="API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.commit()
        principal_cache.PRINCIPALS.clear()


@dataclass(frozen=True)
class Bootstrapped:
    tenant: Tenant
    admin: User
    api_key: str


async def bootstrap_tenant(
    session: AsyncSession, *, name: str, admin_email: str, admin_password: str
) -> Bootstrapped:
    """Create a tenant with its first admin and an admin API key."""
    slug = slugify(name)
    if await session.scalar(select(Tenant).where(Tenant.slug == slug)) is not None:
        raise Conflict(f"tenant {slug!r} already exists", code="duplicate")
    tenant = Tenant(name=name, slug=slug)
    session.add(tenant)
    await session.flush()
    admin = await create_user(
        session,
        tenant.id,
        UserCreate(
            email=admin_email, name="Administrator", password=admin_password, role=Role.ADMIN
        ),
    )
    key = await create_api_key(
        session, tenant.id, ApiKeyCreate(name="bootstrap admin key", role=Role.ADMIN), admin.id
    )
    return Bootstrapped(tenant=tenant, admin=admin, api_key=key.plaintext)


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(f"tenant {slug!r} not found")
    return tenant
