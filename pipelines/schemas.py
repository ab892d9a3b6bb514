"""The versioned JSON messages on the pipeline's topics, validated where they come in.

Every domain event travels in the envelope `core.events.store` writes (`schema_version` 1).
The consumer decodes a record into `MessageEvent` or raises `InvalidPayload` with a short
reason; such a record goes to the dead-letter topic as a `DeadLetter`."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from core.db.types import utcnow
from core.events.types import DomainEvent

SCHEMA_VERSION = 1
MESSAGE_EVENTS = frozenset({DomainEvent.MESSAGE_RECEIVED.value, DomainEvent.MESSAGE_SENT.value})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(_Strict):
    """What every event on every topic carries (core/events/store.py `_envelope`)."""

    schema_version: int
    event_id: uuid.UUID
    event_type: str
    tenant_id: uuid.UUID
    aggregate_type: str
    aggregate_id: uuid.UUID
    aggregate_version: int
    occurred_at: AwareDatetime | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    data: dict[str, Any]


class MessageData(_Strict):
    """`data` of `message.received` and `message.sent`."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID | None = None
    channel_id: uuid.UUID
    direction: Literal["inbound", "outbound"]
    sender_type: str
    text: str = Field(max_length=1_000_000)
    content_type: str = "text"
    sent_at: AwareDatetime


class MessageEvent(_Strict):
    """A validated message event, with where it was read from."""

    envelope: Envelope
    data: MessageData
    # Kafka coordinates (None in embedded mode); the broker's timestamp in ms.
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @property
    def message_id(self) -> uuid.UUID:
        return self.data.message_id


class InvalidPayload(ValueError):
    """A record that is not a message event this consumer can read."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error


class NotAMessageEvent(Exception):
    """A valid envelope of another event type: nothing to enrich, not an error."""


def decode_envelope(value: bytes | str | dict[str, Any]) -> Envelope:
    if isinstance(value, dict):
        raw: Any = value
    else:
        try:
            raw = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidPayload("invalid_json", str(exc)) from exc
    if not isinstance(raw, dict):
        raise InvalidPayload(
            "invalid_envelope", f"expected a JSON object, got {type(raw).__name__}"
        )
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidPayload(
            "unsupported_schema_version", f"schema_version {version!r}, expected {SCHEMA_VERSION}"
        )
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidPayload("invalid_envelope", _short(exc)) from exc


def decode_message_event(value: bytes | str | dict[str, Any], **where: Any) -> MessageEvent:
    """Validate a record; raises `InvalidPayload` (dead-letter it) or `NotAMessageEvent`
    (skip it). `where` are the Kafka coordinates and headers kept on the event."""
    envelope = decode_envelope(value)
    if envelope.event_type not in MESSAGE_EVENTS:
        raise NotAMessageEvent(envelope.event_type)
    try:
        data = MessageData.model_validate(envelope.data)
    except ValidationError as exc:
        raise InvalidPayload("invalid_message", _short(exc)) from exc
    return MessageEvent(envelope=envelope, data=data, **where)


def _short(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
        for err in exc.errors()[:5]
    ]
    return "; ".join(parts)


class DeadLetter(BaseModel):
    """A record the pipeline gave up on, with why, and everything needed to retry it."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    reason: str  # invalid_json, invalid_envelope, invalid_message, enrichment_failed, ...
    error: str
    attempts: int = 0
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # The original value: `payload` when it was UTF-8 text, `payload_b64` otherwise.
    payload: str | None = None
    payload_b64: str | None = None
    consumer_group: str | None = None
    failed_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def of(cls, value: bytes | str, **fields: Any) -> DeadLetter:
        if isinstance(value, str):
            return cls(payload=value, **fields)
        try:
            return cls(payload=value.decode("utf-8"), **fields)
        except UnicodeDecodeError:
            return cls(payload_b64=base64.b64encode(value).decode(), **fields)

    def original(self) -> bytes:
        if self.payload is not None:
            return self.payload.encode()
        return base64.b64decode(self.payload_b64 or "")
