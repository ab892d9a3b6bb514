"""Helpers every service uses: tenant-scoped loads, keyset pages, JSON-array filters."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, exists, func, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import NotFound
from api.schemas.common import decode_cursor, encode_cursor
from core.db.engine import dialect_name

M = TypeVar("M")


async def get_owned(
    session: AsyncSession, model: type[M], obj_id: uuid.UUID, tenant_id: uuid.UUID, *, what: str
) -> M:
    """Load a row of the tenant, or 404: another tenant's row is never acknowledged."""
    obj = await session.get(model, obj_id)
    if obj is None or getattr(obj, "tenant_id", None) != tenant_id:
        raise NotFound(f"{what} {obj_id} not found")
    return obj


async def check_owned(
    session: AsyncSession, model: Any, obj_id: uuid.UUID, tenant_id: uuid.UUID, *, what: str
) -> None:
    """`get_owned`'s 404 for a reference that is only checked, without loading the row: a
    user, team or customer loads its selectin relationships too (a user's teams and their
    members: two more queries)."""
    owner = await session.scalar(select(model.tenant_id).where(model.id == obj_id))
    if owner is None or owner != tenant_id:
        raise NotFound(f"{what} {obj_id} not found")


async def keyset_page(
    session: AsyncSession, query: Select[M], id_column: Any, cursor: str | None, limit: int
) -> tuple[list[M], str | None]:
    """Newest first by time-ordered id. Rows created while a client pages land before its
    cursor, so pages never repeat or skip a row."""
    if cursor:
        query = query.where(id_column < decode_cursor(cursor))
    rows = list((await session.scalars(query.order_by(id_column.desc()).limit(limit + 1))).all())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None  # type: ignore[attr-defined]
    return rows[:limit], next_cursor


def json_array_contains(session: AsyncSession, column: Any, value: str) -> ColumnElement[bool]:
    """`value in column` for a JSON array column, using the GIN index on PostgreSQL."""
    if dialect_name(session) == "postgresql":
        return type_coerce(column, JSONB).contains([value])
    each = func.json_each(column).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == value))
