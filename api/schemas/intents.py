"""Schemas for a tenant's intent taxonomy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from api.schemas.common import Input

MIN_EXAMPLES = 3
MAX_EXAMPLES = 50

IntentName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-z][a-z0-9_]{1,63}$"),
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Example = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Examples = Annotated[list[Example], Field(min_length=MIN_EXAMPLES, max_length=MAX_EXAMPLES)]


def _distinct(examples: list[str] | None) -> list[str] | None:
    if examples is None:
        return None
    unique = list(dict.fromkeys(examples))
    if len(unique) < MIN_EXAMPLES:
        raise ValueError(f"give at least {MIN_EXAMPLES} different example messages")
    return unique


class IntentCreate(Input):
    name: IntentName = Field(description="Lowercase slug: letters, digits, underscores.")
    description: Description = Field(description="What the customer wants, in one sentence.")
    examples: Examples = Field(
        description="Messages customers send with this intent; in every language you serve."
    )
    enabled: bool = True

    _examples = field_validator("examples")(_distinct)


class IntentUpdate(Input):
    """For a default intent only `enabled` may change."""

    description: Description | None = None
    examples: Examples | None = None
    enabled: bool | None = None

    _examples = field_validator("examples")(_distinct)


class IntentPublic(BaseModel):
    name: str
    kind: Literal["default", "custom"]
    enabled: bool
    description: str
    examples: list[str]


class IntentList(BaseModel):
    items: list[IntentPublic]
