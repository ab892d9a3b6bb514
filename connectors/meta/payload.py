"""Decoding Meta's webhook bodies: JSON first, then the channel's models, one error out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

T = TypeVar("T")


class MalformedPayload(ValueError):
    """The body is not the webhook the channel expects; the message says where."""


def decode(body: bytes, read: Callable[[Any], T]) -> T:
    """`read` applied to the JSON document; MalformedPayload when the body is not JSON or
    any part of it fails validation (so nothing of a bad body is ever stored)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload(f"the body is not JSON: {exc}") from None
    try:
        return read(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise MalformedPayload(f"{where}: {first['msg']}") from None
