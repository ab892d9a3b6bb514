"""A message to enrich, whichever way it arrived (Kafka, the in-process bus, a replay), and
the analysis row the models' answer becomes."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Row

from core.domain.conversations import Message
from core.domain.enums import Direction
from models.service import Analysis, LabelResult
from pipelines.schemas import MessageEvent

# What `WorkItem.of_row` reads from the messages table.
STORED_COLUMNS = (
    Message.id,
    Message.tenant_id,
    Message.conversation_id,
    Message.channel_id,
    Message.direction,
    Message.text,
)


@dataclass(frozen=True, slots=True)
class WorkItem:
    message_id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID
    channel_id: uuid.UUID
    inbound: bool
    text: str
    # The event that announced the message (the cause of `message.analyzed`), its
    # correlation id, and the broker's timestamp (ms) when it came through Kafka.
    event_id: str | None = None
    correlation_id: str | None = None
    timestamp_ms: int | None = None

    @classmethod
    def of_row(cls, row: Row[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID, str, str]) -> WorkItem:
        """A stored message, selected with `STORED_COLUMNS` (backfill, replay)."""
        return cls(
            message_id=row.id,
            tenant_id=row.tenant_id,
            conversation_id=row.conversation_id,
            channel_id=row.channel_id,
            inbound=row.direction == Direction.INBOUND,
            text=row.text,
        )

    @classmethod
    def of(cls, event: MessageEvent) -> WorkItem:
        data = event.data
        return cls(
            message_id=data.message_id,
            tenant_id=event.envelope.tenant_id,
            conversation_id=data.conversation_id,
            channel_id=data.channel_id,
            inbound=data.direction == "inbound",
            text=data.text,
            event_id=str(event.envelope.event_id),
            correlation_id=event.envelope.correlation_id,
            timestamp_ms=event.timestamp_ms,
        )


@dataclass(frozen=True, slots=True)
class Enriched:
    item: WorkItem
    analysis: Analysis

    @property
    def versions(self) -> dict[str, str]:
        return component_versions(self.analysis)

    @property
    def model_version(self) -> str:
        return model_version(self.analysis)


def component_versions(analysis: Analysis) -> dict[str, str]:
    return {
        "encoder": analysis.encoder_version,
        "language": analysis.language.model_version,
        "intent": analysis.intent.model_version,
        "sentiment": analysis.sentiment.model_version,
        "urgency": analysis.urgency.model_version,
    }


def model_version(analysis: Analysis) -> str:
    """A short digest of every model that produced `analysis`: with the message id, the key
    that makes a redelivery a no-op and a replay with new models a new row. A message the
    heads skipped (empty, binary text) has head versions "none", so its digest differs."""
    blob = json.dumps(component_versions(analysis), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _label(result: LabelResult) -> dict[str, Any]:
    return {"confidence": result.confidence, "reason": result.reason}


def analysis_row(enriched: Enriched, *, source: str) -> dict[str, Any]:
    """Column values of the `message_analyses` row (without id and created_at)."""
    a, item = enriched.analysis, enriched.item
    language = {a.language.code: a.language.confidence} if a.language.code else {}
    return {
        "message_id": item.message_id,
        "tenant_id": item.tenant_id,
        "model_version": enriched.model_version,
        "encoder_version": a.encoder_version[:128],
        "versions": enriched.versions,
        "language": a.language.code,
        "intent": a.intent.label,
        "sentiment": a.sentiment.label,
        "urgency": a.urgency.label,
        "probabilities": {
            "language": language,
            "intent": a.intent.probabilities,
            "sentiment": a.sentiment.probabilities,
            "urgency": a.urgency.probabilities,
        },
        "entities": [asdict(e) for e in a.entities],
        "details": {
            "language": {"confidence": a.language.confidence, "reason": a.language.reason},
            "intent": _label(a.intent),
            "sentiment": _label(a.sentiment),
            "urgency": _label(a.urgency),
            "notes": list(a.notes),
            "truncated": a.truncated,
        },
        "source": source,
    }
