"""Visitor tokens: who a widget visitor is, signed with the channel's secret (HS256 JWT).

The widget keeps its token in the browser's localStorage and presents it on every call;
the visitor id inside is the customer's `web` identity. A token is bound to its channel
(the audience names the channel), so a token of another channel is refused even when two
channels were given the same secret."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from core.db.types import utcnow

ALGORITHM = "HS256"
# Clock skew tolerated between the API processes that issue and check tokens.
LEEWAY_S = 30


class VisitorTokenError(Exception):
    """Why a token is refused: `expired`, `wrong_channel` or `invalid`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Visitor:
    id: str
    name: str | None = None
    email: str | None = None


def _audience(channel_id: uuid.UUID) -> str:
    return f"relaydesk:web:{channel_id}"


def issue(
    secret: str, channel_id: uuid.UUID, visitor: Visitor, ttl: timedelta
) -> tuple[str, datetime]:
    """A token for `visitor` on the channel, and when it expires."""
    now = utcnow()
    expires = now + ttl
    claims: dict[str, object] = {
        "sub": visitor.id,
        "aud": _audience(channel_id),
        "iat": now,
        "exp": expires,
    }
    if visitor.name:
        claims["name"] = visitor.name
    if visitor.email:
        claims["email"] = visitor.email
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def read(secret: str, channel_id: uuid.UUID, token: str) -> Visitor:
    """The visitor a token names; VisitorTokenError when it is not this channel's,
    expired, or not a token at all."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=_audience(channel_id),
            leeway=LEEWAY_S,
            options={"require": ["sub", "aud", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise VisitorTokenError("expired", "the visitor token has expired") from None
    except jwt.InvalidAudienceError:
        raise VisitorTokenError("wrong_channel", "the visitor token is another channel's") from None
    except jwt.PyJWTError:
        raise VisitorTokenError("invalid", "the visitor token is not valid") from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise VisitorTokenError("invalid", "the visitor token names no visitor")
    name, email = claims.get("name"), claims.get("email")
    return Visitor(
        subject, name if isinstance(name, str) else None, email if isinstance(email, str) else None
    )


def new_visitor_id() -> str:
    return str(uuid.uuid4())
