"""Building blocks shared by the request and response schemas."""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api.errors import BadRequest

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Tags = Annotated[list[Tag], Field(max_length=50)]
# A deliberately plain check: self-hosted teams use internal domains (.local, .internal)
# that strict validators refuse, and the mailbox itself is the real test.
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _check_storable(value: Any, depth: int = 0) -> None:
    """Refuse what databases cannot store: PostgreSQL rejects NUL characters in text and
    non-finite numbers in JSON, which would otherwise surface as a 500 at commit time."""
    if depth > 32:
        raise ValueError("JSON nested deeper than 32 levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, depth + 1)
            _check_storable(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_storable(item, depth + 1)


class Input(BaseModel):
    """Request bodies refuse fields they do not know: a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        _check_storable(data)
        return data


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("invalid cursor", code="invalid_cursor") from exc


def unique_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def drop_unset(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_unset=True)
