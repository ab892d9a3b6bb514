"""What the widget sends and is sent: its frames, message ids and message shape.

A visitor message carries a `client_id`, a UUID the widget makes before sending and keeps
while it retries (on a new socket, or over REST): the provider message id is the visitor
id and that UUID, so a retried message is stored once, and one visitor's ids can never
collide with another's."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from core.domain.enums import DeliveryStatus, Direction

# Agent replies' provider ids start with this; a visitor's with their visitor id.
AGENT_PREFIX = "agent:"
SEPARATOR = ":"


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class VisitorMessageIn(_Frame):
    client_id: uuid.UUID
    text: Annotated[str, StringConstraints(min_length=1, max_length=65_536)]

    @field_validator("text")
    @classmethod
    def _printable(cls, text: str) -> str:
        if "\x00" in text:
            raise ValueError("text must not contain NUL characters")
        return text


class ReceiptIn(_Frame):
    """The widget showed (`delivered`) or the visitor saw (`read`) these agent messages."""

    ids: Annotated[list[Annotated[str, StringConstraints(max_length=255)]], Field(max_length=200)]
    status: Literal["delivered", "read"]


class SessionIn(_Frame):
    """A new session, or the widget's stored token presented again to be renewed."""

    token: Annotated[str, StringConstraints(max_length=4096)] | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    email: EmailStr | None = None


def provider_id(visitor_id: str, client_id: uuid.UUID) -> str:
    return f"{visitor_id}{SEPARATOR}{client_id}"


def agent_provider_id() -> str:
    return f"{AGENT_PREFIX}{uuid.uuid4()}"


def widget_message(
    *,
    provider_message_id: str,
    direction: str,
    text: str,
    sent_at: str,
    status: str,
    visitor_id: str,
) -> dict[str, Any]:
    """A message as the widget shows it. Its id is the client id for the visitor's own
    messages (what the widget made) and the provider id for everything else."""
    own = visitor_id + SEPARATOR
    inbound_message = direction == Direction.INBOUND.value
    shown_id = provider_message_id
    if inbound_message and provider_message_id.startswith(own):
        shown_id = provider_message_id[len(own) :]
    return {
        "id": shown_id,
        "author": "visitor" if inbound_message else "agent",
        "text": text,
        "sent_at": sent_at,
        "status": DeliveryStatus.SENT.value if inbound_message else status,
    }


def push_key(visitor_id: str) -> str:
    """The key a visitor's sockets listen under on the push hub (core/push.py)."""
    return f"web:{visitor_id}"
