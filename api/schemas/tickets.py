"""Schemas for tickets, bulk updates, ticket history and SLA policies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from api.schemas.common import Input, Name, Output, Tags
from core.domain.enums import Priority, TicketStatus, TicketType

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
CustomFields = Annotated[dict[str, Any], Field(max_length=200)]


class TicketCreate(Input):
    subject: Subject | None = Field(
        default=None, description="Defaults to the conversation's first message."
    )
    description: Annotated[str, StringConstraints(max_length=65_536)] = ""
    conversation_id: uuid.UUID | None = None
    requester_id: uuid.UUID | None = None
    status: TicketStatus = TicketStatus.NEW
    priority: Priority = Priority.NORMAL
    type: TicketType = TicketType.QUESTION
    assignee_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    tags: Tags = Field(default_factory=list)
    custom_fields: CustomFields = Field(default_factory=dict)
    sla_policy_id: uuid.UUID | None = None


class TicketUpdate(Input):
    version: int | None = Field(
        default=None, ge=1, description="The version you read; a stale one gets 409."
    )
    subject: Subject | None = None
    description: Annotated[str, StringConstraints(max_length=65_536)] | None = None
    status: TicketStatus | None = None
    priority: Priority | None = None
    type: TicketType | None = None
    assignee_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    tags: Tags | None = None
    custom_fields: CustomFields | None = None
    sla_policy_id: uuid.UUID | None = None


class SlaStatus(BaseModel):
    policy_id: uuid.UUID | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_responded_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool
    state: Literal["none", "active", "met", "breached"]


class TicketPublic(Output):
    id: uuid.UUID
    number: int
    subject: str
    description: str
    status: TicketStatus
    priority: Priority
    type: TicketType
    requester_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    team_id: uuid.UUID | None
    tags: list[str]
    custom_fields: dict[str, Any]
    version: int
    conversation_ids: list[uuid.UUID]
    sla: SlaStatus
    solved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class BulkChanges(Input):
    status: TicketStatus | None = None
    priority: Priority | None = None
    type: TicketType | None = None
    assignee_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    add_tags: Tags = Field(default_factory=list)
    remove_tags: Tags = Field(default_factory=list)


class TicketBulkUpdate(Input):
    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=1000)]
    changes: BulkChanges


class BulkItemResult(BaseModel):
    id: uuid.UUID
    ok: bool
    version: int | None = None
    error: dict[str, Any] | None = None


class TicketBulkResult(BaseModel):
    updated: int
    failed: int
    results: list[BulkItemResult]


class TicketLink(Input):
    conversation_id: uuid.UUID


class EventPublic(Output):
    id: uuid.UUID
    aggregate_type: str
    aggregate_id: uuid.UUID
    aggregate_version: int
    event_type: str
    payload: dict[str, Any]
    correlation_id: str | None
    causation_id: str | None
    actor_type: str | None
    actor_id: str | None
    occurred_at: datetime


Minutes = Annotated[int, Field(ge=1, le=60 * 24 * 365)]


class SlaTarget(Input):
    first_response_minutes: Minutes
    resolution_minutes: Minutes


Clock = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]


class BusinessHours(Input):
    timezone: str = "UTC"
    hours: dict[
        Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        Annotated[list[tuple[Clock, Clock]], Field(max_length=6)],
    ]
    holidays: Annotated[list[str], Field(max_length=400)] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("holidays")
    @classmethod
    def _iso_dates(cls, value: list[str]) -> list[str]:
        from datetime import date

        for day in value:
            date.fromisoformat(day)
        return value

    @field_validator("hours")
    @classmethod
    def _spans_ordered(
        cls, value: dict[str, list[tuple[str, str]]]
    ) -> dict[str, list[tuple[str, str]]]:
        for day, spans in value.items():
            for start, end in spans:
                if start >= end and end != "24:00":
                    raise ValueError(f"{day}: {start}-{end} ends before it starts")
        if not any(value.values()):
            # A calendar that never opens has no due time: every ticket create would fail.
            raise ValueError("business hours need at least one opening span")
        return value


class SlaPolicyCreate(Input):
    name: Name
    is_default: bool = False
    targets: dict[Priority, SlaTarget]
    business_hours: BusinessHours | None = None


class SlaPolicyUpdate(Input):
    name: Name | None = None
    is_default: bool | None = None
    targets: dict[Priority, SlaTarget] | None = None
    business_hours: BusinessHours | None = None


class SlaPolicyPublic(Output):
    id: uuid.UUID
    name: str
    is_default: bool
    targets: dict[str, Any]
    business_hours: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
