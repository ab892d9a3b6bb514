"""Schemas for knowledge-base articles and search."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.schemas.ai import KbHitPublic
from api.schemas.common import Input, Output, Tags

ArticleStatus = Literal["published", "draft"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200_000)]
# ISO 639-1 (or -3), optionally with a region: en, pt-BR
LanguageCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
]


class KbArticleCreate(Input):
    title: Title
    body: Body
    language: LanguageCode | None = Field(
        default=None, description="Detected from the text when the index reads it, if null."
    )
    tags: Tags = Field(default_factory=list)
    status: ArticleStatus = Field(default="published", description="Drafts are never retrieved.")


class KbArticleUpdate(Input):
    title: Title | None = None
    body: Body | None = None
    language: LanguageCode | None = None
    tags: Tags | None = None
    status: ArticleStatus | None = None


class KbArticlePublic(Output):
    id: uuid.UUID
    title: str
    body: str
    language: str | None
    tags: list[str]
    status: ArticleStatus
    revision: int = Field(description="Bumped on every change.")
    created_at: datetime
    updated_at: datetime


class KbSearchRequest(Input):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    k: int = Field(default=5, ge=1, le=20)
    language: LanguageCode | None = Field(
        default=None,
        description="The query's language when known (detected otherwise); not a filter.",
    )


class KbSearchPublic(BaseModel):
    items: list[KbHitPublic]
