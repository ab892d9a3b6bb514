"""The model service port: what the API asks of the models, whoever runs them.

Two adapters implement it: `serve.client.ServeModels` (Ray Serve handles: the production
path and `relaydesk up`) and `models.local.LocalModels` (the same model code in-process:
tests, scripts and `relaydesk up --no-serve`). Everything crossing the port is a plain
frozen dataclass, so that it pickles cheaply through Ray and turns into JSON without help.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CustomIntentSpec:
    name: str
    description: str
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TenantTaxonomy:
    """A tenant's intents as the intent head needs them: default intents switched off, and
    tenant intents classified few-shot from a description and examples."""

    disabled: tuple[str, ...] = ()
    custom: tuple[CustomIntentSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class AnalyzeRequest:
    text: str
    channel: str | None = None  # whatsapp, instagram, email, web, api
    # Earlier contacts of the same customer about the same matter, when the caller knows
    # them (an urgency feature); None: read from the text ("third time I write").
    repeat_contacts: int | None = None
    taxonomy: TenantTaxonomy = field(default_factory=TenantTaxonomy)


@dataclass(frozen=True, slots=True)
class LabelResult:
    """A head's answer: `label` None means it abstained, and `reason` says why."""

    label: str | None
    confidence: float
    probabilities: dict[str, float]
    model_version: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LanguageResultOut:
    code: str | None
    confidence: float
    model_version: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class EntityOut:
    type: str
    text: str
    start: int
    end: int
    source: str
    normalized: str | None = None


@dataclass(frozen=True, slots=True)
class Analysis:
    language: LanguageResultOut
    intent: LabelResult
    sentiment: LabelResult
    urgency: LabelResult
    entities: tuple[EntityOut, ...]
    encoder_version: str
    # Input handling the caller should know about: the text was cut to the encoder's
    # limit, was empty, looked binary, ... Human-readable, one sentence each.
    notes: tuple[str, ...] = ()
    truncated: bool = False
    # Task → version label of the head that answered ("relaydesk-intent/3", or
    # "bundle/<heads_key>" before a version is registered); a head that did not run (empty
    # text, no heads) is left out.
    model_versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShadowAgreement:
    """How often a challenger run in shadow gave the served head's answer (abstaining
    counts as an answer), since the replica started."""

    task: str
    champion: str  # version label of the served head
    challenger: str  # version label of the shadowed head
    compared: int
    agreed: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


@dataclass(frozen=True, slots=True)
class Citation:
    article_id: uuid.UUID
    chunk: int  # position of the chunk in the article, from 0
    title: str


@dataclass(frozen=True, slots=True)
class KbHit:
    citation: Citation
    text: str  # the chunk
    score: float  # fused score, higher is better; comparable within one answer only
    language: str | None


@dataclass(frozen=True, slots=True)
class ReplyHit:
    conversation_id: uuid.UUID
    customer_text: str  # what the customer wrote in that resolved case
    reply_text: str  # what the agent answered
    score: float


@dataclass(frozen=True, slots=True)
class ChurnFactor:
    name: str
    value: float | None  # the signal as given (days since last contact: None = never)
    contribution: float  # log-odds added to the score


@dataclass(frozen=True, slots=True)
class ChurnScore:
    probability: float
    band: str  # low / medium / high
    factors: tuple[ChurnFactor, ...]  # largest contribution first
    model_version: str
    # The top contributing factors in plain words, largest first.
    explanation: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SupportSignalsIn:
    contacts_30d: int
    negative_share: float
    sla_breaches_30d: int
    open_tickets: int
    days_since_last_contact: float | None


class ModelUnavailableError(RuntimeError):
    """A capability this model service cannot provide now (knowledge retrieval not
    configured, models not built or failing to load); the message says which and why. The
    API answers 503 with it."""


class ModelService(Protocol):
    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]: ...

    async def kb_search(
        self, tenant_id: uuid.UUID, query: str, k: int = 5, language: str | None = None
    ) -> list[KbHit]: ...

    async def kb_refresh(self, tenant_id: uuid.UUID) -> None:
        """Make the tenant's latest article changes visible to search now (a hint after a
        write; the index also catches up on its own within seconds)."""
        ...

    async def similar_replies(
        self, tenant_id: uuid.UUID, text: str, k: int = 3
    ) -> list[ReplyHit]: ...

    async def churn(self, signals: SupportSignalsIn) -> ChurnScore: ...

    async def versions(self) -> dict[str, str]:
        """Model name → version of everything loaded (for /readyz and answers)."""
        ...

    async def shadow(self) -> list[ShadowAgreement]:
        """Agreement of the challengers run in shadow with the served heads."""
        ...

    async def close(self) -> None: ...
