"""Schemas for message analysis, reply suggestions and churn scores."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from api.schemas.common import Input, Output
from core.domain.enums import ChannelType

MAX_BATCH = 64


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("the text is empty: send at least one character that is not a space")
    return value


class AnalyzeItem(Input):
    text: str = Field(description="The message; longer than the limit it is cut, and said so.")
    channel: ChannelType | None = Field(default=None, description="Where it came from.")
    repeat_contacts: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Earlier contacts about the same matter, if known (an urgency feature).",
    )

    _text = field_validator("text")(_not_blank)


class AnalyzeBatch(Input):
    items: list[AnalyzeItem] = Field(min_length=1, max_length=MAX_BATCH)


def _analyze_kind(value: Any) -> str:
    has_items = isinstance(value, dict) and "items" in value
    return "batch" if has_items or isinstance(value, AnalyzeBatch) else "one"


AnalyzeBody = Annotated[
    Annotated[AnalyzeItem, Tag("one")] | Annotated[AnalyzeBatch, Tag("batch")],
    Discriminator(_analyze_kind),
]


class LanguagePublic(Output):
    code: str | None = Field(description="ISO 639-1; null when unknown (see `reason`).")
    confidence: float
    model_version: str
    reason: str | None


class LabelPublic(Output):
    label: str | None = Field(description="null: the model abstained (see `reason`).")
    confidence: float
    probabilities: dict[str, float]
    model_version: str
    reason: str | None


class EntityPublic(Output):
    type: str
    text: str
    start: int
    end: int
    source: str
    normalized: str | None


class AnalysisPublic(Output):
    language: LanguagePublic
    intent: LabelPublic
    sentiment: LabelPublic
    urgency: LabelPublic
    entities: list[EntityPublic]
    encoder_version: str
    notes: list[str]
    truncated: bool
    model_versions: dict[str, str] = Field(
        description="Task → version of the head that answered: `relaydesk-intent/3` for a "
        "registered version, `bundle/<key>` for the built-in heads."
    )


class AnalysisBatchPublic(BaseModel):
    items: list[AnalysisPublic]


class ShadowAgreementPublic(Output):
    task: str
    champion: str = Field(description="Version of the served head.")
    challenger: str = Field(description="Version run in shadow beside it.")
    compared: int = Field(description="Messages both answered since the model replica started.")
    agreed: int = Field(description="Of those, how many got the same answer.")
    agreement: float | None = Field(description="agreed / compared; null before any message.")


class ShadowPublic(BaseModel):
    items: list[ShadowAgreementPublic]


class SuggestRequest(Input):
    conversation_id: uuid.UUID
    articles: int = Field(default=3, ge=1, le=10, description="Knowledge passages to return.")
    replies: int = Field(default=3, ge=1, le=10, description="Similar resolved cases to return.")


class CitationPublic(Output):
    article_id: uuid.UUID
    chunk: int
    title: str


class KbHitPublic(Output):
    citation: CitationPublic
    text: str
    score: float
    language: str | None


class ReplyHitPublic(Output):
    conversation_id: uuid.UUID
    customer_text: str
    reply_text: str
    score: float


class SuggestPublic(BaseModel):
    query: str = Field(description="The customer's latest messages the suggestions answer.")
    articles: list[KbHitPublic]
    replies: list[ReplyHitPublic]


class ChurnSignalsPublic(Output):
    contacts_30d: int = Field(description="Conversations the customer wrote in, last 30 days.")
    negative_share: float = Field(description="Share of their analyzed messages read negative.")
    sla_breaches_30d: int
    open_tickets: int
    days_since_last_contact: float | None


class ChurnFactorPublic(Output):
    name: str
    value: float | None
    contribution: float = Field(description="Log-odds added to the score.")


class ChurnPublic(BaseModel):
    customer_id: uuid.UUID
    probability: float
    band: Literal["low", "medium", "high"]
    factors: list[ChurnFactorPublic] = Field(description="Every signal, largest effect first.")
    explanation: list[str]
    signals: ChurnSignalsPublic
    model_version: str
    notes: list[str]


Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class AnalysisCorrection(Input):
    """The right labels for a message, as a person reads it. A label equal to the model's
    is recorded as a confirmation."""

    intent: Label | None = Field(default=None, description="One of the tenant's intents.")
    sentiment: Label | None = Field(default=None, description="negative, neutral or positive")
    urgency: Label | None = Field(default=None, description="low, normal, high or urgent")

    @model_validator(mode="after")
    def _some_label(self) -> AnalysisCorrection:
        if not self.model_fields_set:
            raise ValueError("give at least one of intent, sentiment, urgency")
        if nulls := sorted(k for k in self.model_fields_set if getattr(self, k) is None):
            raise ValueError(f"{', '.join(nulls)} cannot be null: send the right label")
        return self

    def labels(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class TaskQualityPublic(Output):
    task: Literal["intent", "sentiment", "urgency"]
    model_version: str | None = Field(description="The head version the reviews are about.")
    reviewed: int = Field(description="Predictions a person reviewed (latest review each).")
    corrected: int = Field(description="Reviewed predictions a person changed.")
    accuracy: float | None = Field(description="Confirmations / reviewed; null if none.")


class QualityTotalPublic(Output):
    task: Literal["intent", "sentiment", "urgency"]
    reviewed: int
    corrected: int
    accuracy: float | None


class QualityPublic(BaseModel):
    """How often people agreed with the live models, from their corrections."""

    since: datetime | None
    items: list[TaskQualityPublic] = Field(description="Per task and model version.")
    totals: list[QualityTotalPublic] = Field(description="Per task, every version together.")
    reviewed: int
    corrected: int
    accuracy: float | None
