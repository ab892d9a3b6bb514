"""Schemas for inbound messages, conversations, replies and notes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AwareDatetime,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from api.schemas.attachments import stored_attachment_shape, with_download_urls
from api.schemas.common import Email, Input, Output, Tags
from api.schemas.customers import Attributes, IdentityIn
from core.domain.enums import (
    ContentType,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Priority,
    SenderType,
)

MessageText = Annotated[str, StringConstraints(max_length=65_536)]
Attachments = Annotated[list[dict[str, Any]], Field(max_length=50)]


class InboundCustomer(Input):
    identity: IdentityIn | None = Field(
        default=None, description="Defaults to the channel's identity kind with `external_id`."
    )
    external_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
        | None
    ) = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    email: Email | None = None
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    attributes: Attributes | None = None

    @model_validator(mode="after")
    def _needs_identity(self) -> InboundCustomer:
        if self.identity is None and self.external_id is None and self.email is None:
            raise ValueError("give the customer an identity, an external_id or an email")
        return self


class InboundMessage(Input):
    channel_id: uuid.UUID
    customer: InboundCustomer
    text: MessageText = ""
    content_type: ContentType = ContentType.TEXT
    attachments: Attachments = Field(default_factory=list)
    provider_message_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    sent_at: AwareDatetime | None = None
    subject: Annotated[str, StringConstraints(max_length=500)] | None = None
    metadata: Annotated[dict[str, Any], Field(max_length=100)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_content(self) -> InboundMessage:
        if not self.text and not self.attachments and self.content_type is ContentType.TEXT:
            raise ValueError("a text message needs text or attachments")
        return self


class CorrectionPublic(Output):
    """A person's label for one task, which the analysis shows instead of the model's."""

    label: str
    predicted: str | None = Field(description="What the model said (null: it abstained).")
    model_version: str | None
    source: str = Field(description="agent_correction or ticket_change")
    actor_type: str
    actor_id: str
    created_at: datetime


class MessageAnalysisPublic(Output):
    """The latest analysis of a message by the enrichment pipeline; where a person
    corrected a label, the label is theirs and `corrections` keeps the model's."""

    model_version: str = Field(description="Digest of the versions of every model used.")
    encoder_version: str
    versions: dict[str, str]
    language: str | None
    intent: str | None
    sentiment: str | None
    urgency: str | None
    probabilities: dict[str, Any]
    entities: list[dict[str, Any]]
    details: dict[str, Any] = Field(description="Confidences, abstention reasons, notes.")
    created_at: datetime
    corrections: dict[str, CorrectionPublic] = Field(
        default_factory=dict, description="Per corrected task: the person's label and the model's."
    )


class ConversationInsightPublic(Output):
    """The conversation as the models read it, folded over its messages in order."""

    language: str | None
    intent: str | None
    urgency: str | None
    sentiment: str | None
    sentiment_score: float = Field(description="Moving average of P(positive) - P(negative).")
    sentiment_trend: str = Field(description="improving, steady or worsening")
    suggested_priority: Priority
    analyzed_messages: int
    last_message_id: uuid.UUID | None
    updated_at: datetime


class MessagePublic(Output):
    id: uuid.UUID
    conversation_id: uuid.UUID
    channel_id: uuid.UUID
    direction: Direction
    sender_type: SenderType
    sender_id: uuid.UUID | None
    text: str
    content_type: ContentType
    attachments: list[dict[str, Any]]
    provider_message_id: str | None
    delivery_status: DeliveryStatus
    delivery_error: dict[str, Any] | None = Field(
        description="The provider's error (provider, status, code, message): the last one "
        "while a `queued` reply is retried, the final one once `failed`."
    )
    delivery_attempts: int = Field(
        default=0, description="Sends of this reply tried so far by the delivery worker."
    )
    next_attempt_at: datetime | None = Field(
        default=None,
        validation_alias=AliasChoices("next_attempt_at", "delivery_due_at"),
        description="When the delivery worker tries (again) a `queued` reply; null once "
        "it is sent or failed, and for replies no worker sends (an API channel's).",
    )
    warnings: list[str] = Field(
        default_factory=list, description="Notes on the reply (a template sent unchecked)."
    )
    sent_at: datetime
    created_at: datetime
    analysis: MessageAnalysisPublic | None = Field(
        default=None, description="Set on conversation reads once the message is analyzed."
    )

    @field_validator("attachments")
    @classmethod
    def _download_urls(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Stored ones get `download_url` (GET /v1/attachments/{key}); nothing is stored.
        return with_download_urls(value)


class InboundResult(Output):
    created: bool = Field(description="False when the provider id was already stored.")
    message: MessagePublic
    conversation_id: uuid.UUID
    customer_id: uuid.UUID


class ConversationPublic(Output):
    id: uuid.UUID
    customer_id: uuid.UUID
    channel_id: uuid.UUID
    status: ConversationStatus
    priority: Priority
    assignee_id: uuid.UUID | None
    team_id: uuid.UUID | None
    tags: list[str]
    subject: str
    snoozed_until: datetime | None
    last_message_at: datetime | None
    message_count: int
    merged_into_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class NotePublic(Output):
    id: uuid.UUID
    conversation_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    author_id: uuid.UUID | None
    body: str
    created_at: datetime


class ConversationDetail(ConversationPublic):
    messages: list[MessagePublic]
    notes: list[NotePublic]
    ticket_ids: list[uuid.UUID]
    ai: ConversationInsightPublic | None = None


class ReplyTemplate(Input):
    """An approved message template (WhatsApp): `parameters` fill the body's {{1}}, {{2}}...
    in order; `components` (Meta's format) replace them when given."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=16)] = "en_US"
    parameters: Annotated[
        list[Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=50)
    ] = Field(default_factory=list)
    components: Annotated[list[dict[str, Any]], Field(max_length=20)] | None = None


class ReplyCreate(Input):
    text: MessageText = ""
    content_type: ContentType = ContentType.TEXT
    attachments: Attachments = Field(
        default_factory=list,
        description='By link, `{"type", "url", "filename"?}`, or a stored file: the '
        "`message_attachment` that `POST /v1/attachments` answers, "
        '`{"type", "storage_key": <sha256>, "mime_type", "filename"?}` (`key` and '
        "`content_type` are accepted for `storage_key` and `mime_type`). Stored files are "
        "uploaded to WhatsApp and attached to email; Instagram takes links only.",
    )
    template: ReplyTemplate | None = Field(
        default=None, description="Send an approved template (allowed outside a 24 h window)."
    )
    interactive: Annotated[dict[str, Any], Field(max_length=20)] | None = Field(
        default=None, description="A provider interactive object (WhatsApp buttons or list)."
    )
    human_agent: bool = Field(
        default=False,
        description="Instagram: send with the HUMAN_AGENT tag, allowed up to 7 days after "
        "the customer's last message.",
    )

    @field_validator("attachments")
    @classmethod
    def _stored_shape(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [stored_attachment_shape(a) for a in value]

    @model_validator(mode="after")
    def _has_content(self) -> ReplyCreate:
        if (
            not self.text.strip()
            and not self.attachments
            and self.template is None
            and self.interactive is None
        ):
            raise ValueError("a reply needs text, attachments, a template or an interactive body")
        return self


class NoteCreate(Input):
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=65_536)]


class AssignRequest(Input):
    assignee_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None


class ConversationUpdate(Input):
    status: ConversationStatus | None = None
    priority: Priority | None = None
    tags: Tags | None = None
    snoozed_until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _snooze_needs_time(self) -> ConversationUpdate:
        if self.status is ConversationStatus.SNOOZED and self.snoozed_until is None:
            raise ValueError("snoozing needs snoozed_until")
        return self


class ConversationMerge(Input):
    target_id: uuid.UUID
    source_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=50)]
