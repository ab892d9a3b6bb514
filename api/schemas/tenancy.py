"""Schemas for authentication, users, teams and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from api.schemas.common import Email, Input, Name, Output, Tag
from core.domain.enums import Role

Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]


class TokenRequest(Input):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    tenant: str | None = Field(
        default=None,
        max_length=100,
        description="Tenant slug; needed only if the email has accounts in several tenants.",
    )


class TokenResponse(Output):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: Role
    tenant_id: uuid.UUID
    user_id: uuid.UUID


class UserCreate(Input):
    email: Email
    name: Name
    password: Password
    role: Role = Role.AGENT
    team_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)


class UserUpdate(Input):
    name: Name | None = None
    password: Password | None = None
    role: Role | None = None
    is_active: bool | None = None
    team_ids: list[uuid.UUID] | None = Field(default=None, max_length=100)


class TeamRef(Output):
    id: uuid.UUID
    name: str


class UserPublic(Output):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    is_active: bool
    teams: list[TeamRef]
    created_at: datetime


class TeamCreate(Input):
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    skills: Annotated[list[Tag], Field(max_length=100)] = Field(default_factory=list)
    member_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class TeamUpdate(Input):
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    skills: Annotated[list[Tag], Field(max_length=100)] | None = None
    member_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)


class MemberRef(Output):
    id: uuid.UUID
    name: str
    email: str


class TeamPublic(Output):
    id: uuid.UUID
    name: str
    description: str
    skills: list[str]
    members: list[MemberRef]
    created_at: datetime


class ApiKeyCreate(Input):
    name: Name
    role: Role = Role.AGENT


class ApiKeyPublic(Output):
    id: uuid.UUID
    name: str
    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The full key. It is shown only in this response.")
