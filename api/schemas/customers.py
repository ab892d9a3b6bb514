"""Schemas for customers, their identities and channels."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from api.schemas.common import Email, Input, Name, Output
from core.domain.enums import ChannelType, IdentityKind

IdentityValue = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)
]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ().-]{3,30}$")
]
Attributes = Annotated[dict[str, Any], Field(max_length=200)]


def normalize_identity(kind: IdentityKind, value: str) -> str:
    """One spelling per identity, so lookups and uniqueness do not depend on formatting."""
    value = value.strip()
    if kind is IdentityKind.EMAIL:
        return value.lower()
    if kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP):
        digits = "".join(c for c in value if c.isdigit())
        return digits or value
    return value


class IdentityIn(Input):
    kind: IdentityKind
    value: IdentityValue


class IdentityPublic(Output):
    kind: IdentityKind
    value: str


class CustomerCreate(Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    email: Email | None = None
    phone: Phone | None = None
    attributes: Attributes = Field(default_factory=dict)
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)


class CustomerUpdate(Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    email: Email | None = None
    phone: Phone | None = None
    attributes: Attributes | None = None


class CustomerPublic(Output):
    id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    attributes: dict[str, Any]
    identities: list[IdentityPublic]
    merged_into_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class CustomerMerge(Input):
    source_id: uuid.UUID = Field(description="The duplicate customer folded into this one.")


class ChannelCreate(Input):
    type: ChannelType
    name: Name
    config: Annotated[dict[str, Any], Field(max_length=100)] = Field(default_factory=dict)


class ChannelUpdate(Input):
    name: Name | None = None
    config: Annotated[dict[str, Any], Field(max_length=100)] | None = None
    is_active: bool | None = None


class ChannelPublic(Output):
    id: uuid.UUID
    type: ChannelType
    name: str
    config: dict[str, Any]
    is_active: bool
    created_at: datetime

    @field_validator("config", mode="before")
    @classmethod
    def _redact(cls, value: dict[str, Any]) -> dict[str, Any]:
        from core.domain.channels import redact_config

        return redact_config(value)
