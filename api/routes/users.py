"""Users (agents, admins, viewers) and teams of the tenant."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import select

from api.deps import Admin, SessionDep, Viewer
from api.schemas.tenancy import (
    TeamCreate,
    TeamPublic,
    TeamUpdate,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from api.services import tenancy
from api.services.common import get_owned
from core.domain.tenancy import Team, User

router = APIRouter(tags=["users and teams"])


@router.get("/v1/users", response_model=list[UserPublic])
async def list_users(session: SessionDep, principal: Viewer) -> list[User]:
    """The tenant's users, by name."""
    rows = await session.scalars(
        select(User).where(User.tenant_id == principal.tenant_id).order_by(User.name)
    )
    return list(rows.all())


@router.post("/v1/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, session: SessionDep, principal: Admin) -> User:
    """Create a user; the email must be new in this tenant."""
    return await tenancy.create_user(session, principal.tenant_id, body)


@router.get("/v1/users/{user_id}", response_model=UserPublic)
async def get_user(user_id: uuid.UUID, session: SessionDep, principal: Viewer) -> User:
    """One user."""
    return await get_owned(session, User, user_id, principal.tenant_id, what="user")


@router.patch("/v1/users/{user_id}", response_model=UserPublic)
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, session: SessionDep, principal: Admin
) -> User:
    """Change a user's name, password, role, teams or active flag."""
    return await tenancy.update_user(session, principal.tenant_id, user_id, body)


@router.delete("/v1/users/{user_id}", response_model=UserPublic)
async def deactivate_user(user_id: uuid.UUID, session: SessionDep, principal: Admin) -> User:
    """Deactivate a user: their history stays, their sign-in stops."""
    return await tenancy.update_user(
        session, principal.tenant_id, user_id, UserUpdate(is_active=False)
    )


@router.get("/v1/teams", response_model=list[TeamPublic])
async def list_teams(session: SessionDep, principal: Viewer) -> list[Team]:
    """The tenant's teams with their skills and members."""
    rows = await session.scalars(
        select(Team).where(Team.tenant_id == principal.tenant_id).order_by(Team.name)
    )
    return list(rows.all())


@router.post("/v1/teams", response_model=TeamPublic, status_code=status.HTTP_201_CREATED)
async def create_team(body: TeamCreate, session: SessionDep, principal: Admin) -> Team:
    """Create a team with skills and members."""
    return await tenancy.save_team(session, principal.tenant_id, body)


@router.get("/v1/teams/{team_id}", response_model=TeamPublic)
async def get_team(team_id: uuid.UUID, session: SessionDep, principal: Viewer) -> Team:
    """One team."""
    return await get_owned(session, Team, team_id, principal.tenant_id, what="team")


@router.patch("/v1/teams/{team_id}", response_model=TeamPublic)
async def update_team(
    team_id: uuid.UUID, body: TeamUpdate, session: SessionDep, principal: Admin
) -> Team:
    """Rename a team or change its skills or members."""
    team = await get_owned(session, Team, team_id, principal.tenant_id, what="team")
    return await tenancy.save_team(session, principal.tenant_id, body, team)


@router.delete("/v1/teams/{team_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_team(team_id: uuid.UUID, session: SessionDep, principal: Admin) -> None:
    """Delete a team; its conversations and tickets become unassigned to a team."""
    team = await get_owned(session, Team, team_id, principal.tenant_id, what="team")
    await session.delete(team)
    await session.commit()
