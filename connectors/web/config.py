"""A web chat channel's config: which sites may embed the widget, the secret that signs
visitor tokens, and what the widget looks like."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# Long enough for HMAC-SHA256 to be as strong as its key can make it.
MIN_SECRET_CHARS = 32


def _origin(value: str) -> str:
    """`scheme://host[:port]` in the spelling browsers send in the Origin header."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an origin is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("an origin has no path, query, fragment or user")
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port not in (None, default) else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


Origin = Annotated[str, StringConstraints(max_length=300), AfterValidator(_origin)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


def _new_secret() -> str:
    return secrets.token_urlsafe(MIN_SECRET_CHARS)


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Pages that may embed the widget (their Origin); empty: any site.
    allowed_origins: Annotated[list[Origin], Field(max_length=100)] = Field(default_factory=list)
    # Signs visitor tokens (HS256). Generated when left out; a PATCH that leaves it out
    # generates a new one, which signs every visitor out (send back "***" to keep it).
    visitor_token_secret: Annotated[
        str, StringConstraints(min_length=MIN_SECRET_CHARS, max_length=1024)
    ] = Field(default_factory=_new_secret)
    visitor_token_ttl_days: Annotated[int, Field(ge=1, le=730)] = 180
    # How the widget looks.
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)] = (
        "Chat with us"
    )
    welcome_text: Text = "Hi! How can we help you today?"
    color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = "#2563eb"
    position: Literal["right", "left"] = "right"

    def allows(self, origin: str | None, own_host: str | None = None) -> bool:
        """Whether a request from `origin` (its Origin header) may use the widget. No
        Origin (not a browser) or the API's own host (the demo page) is always allowed:
        the visitor token, not the origin, is what authenticates."""
        if origin is None or not self.allowed_origins:
            return True
        try:
            normalized = _origin(origin)
        except ValueError:
            return False
        if own_host is not None and urlsplit(normalized).netloc == own_host.lower():
            return True
        return normalized in self.allowed_origins

    def public(self) -> dict[str, str]:
        """What the widget is told about its channel (never the secret)."""
        return {
            "title": self.title,
            "welcome_text": self.welcome_text,
            "color": self.color,
            "position": self.position,
        }
