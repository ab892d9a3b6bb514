"""Helpers every service uses: tenant-scoped loads, keyset pages, JSON-array filters."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Dialect,
    Integer,
    Row,
    Select,
    String,
    bindparam,
    exists,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator

from api.errors import NotFound
from api.schemas.common import decode_cursor, encode_cursor
from api.services.search import search_term
from core.db import raw_read

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


async def fetch_page(
    session: AsyncSession, statement: Select[Any], params: dict[str, Any], limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Run a list statement built with `keyset` and split off the next page's cursor; the
    rows come as dicts (on the driver itself where the session allows, core/db/raw_read)."""
    bound = {**params, "limit": limit + 1}
    if raw_read.usable(session):
        rows = await raw_read.fetch_dicts(session, statement, bound)
    else:
        rows = as_dicts((await session.execute(statement, bound)).all())
    return page_of(rows, limit)


def page_of(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The first `limit` of `limit + 1` rows and the next page's cursor (when there is
    a row past them)."""
    next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def keyset(query: Select[Any], id_column: Any, after: bool) -> Select[Any]:
    """Newest first by time-ordered id, `limit` rows, after the cursor's id (`after`) when
    there is one. Rows created while a client pages land before its cursor, so pages
    never repeat or skip a row."""
    if after:
        query = query.where(id_column < bindparam("after"))
    return query.order_by(id_column.desc()).limit(bindparam("limit", type_=Integer))


def as_dicts(rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    """Rows as dicts, five times faster than `Row._asdict` (measured: 0.04 against 0.19 ms
    for a page of 50)."""
    if not rows:
        return []
    keys = rows[0]._fields
    return [dict(zip(keys, row, strict=True)) for row in rows]


class _IdList(TypeDecorator[list[uuid.UUID]]):
    """Ids aggregated in SQL: an array of uuid on PostgreSQL, JSON text of the stored hex
    strings on SQLite; UUIDs either way."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> list[uuid.UUID]:
        if isinstance(value, str):
            return [uuid.UUID(item) for item in json.loads(value)]
        return list(value or ())


def id_list(dialect: str, ids: Select[Any]) -> ColumnElement[list[uuid.UUID]]:
    """The ids `ids` selects, as one list-valued column of the enclosing query (ordered
    by `ids`' ORDER BY): a correlated subquery, so a page and its links are one statement."""
    if dialect == "postgresql":
        return type_coerce(func.array(ids.scalar_subquery()), _IdList())
    inner = ids.subquery()
    column = inner.c[0]
    return type_coerce(select(func.json_group_array(column)).scalar_subquery(), _IdList())


def list_filter(
    name: str,
    columns: Any,
    dialect: str,
    equals: Sequence[str],
    text_match: ColumnElement[bool],
) -> ColumnElement[bool] | None:
    """The condition of a list filter both conversation and ticket lists have (status,
    equality on `equals`, tag, updated_since, full text), on bound parameters of the same
    name; None for a filter the caller handles itself."""
    if name == "status":
        status: ColumnElement[bool] = columns.status.in_(bindparam("status", expanding=True))
        return status
    if name in equals:
        cond: ColumnElement[bool] = columns[name] == bindparam(name)
        return cond
    if name == "tag":
        return json_array_contains(dialect, columns.tags, bindparam("tag", type_=String))
    if name == "updated_since":
        since: ColumnElement[bool] = columns.updated_at >= bindparam("updated_since")
        return since
    if name == "fts_q":
        return text_match
    return None


def json_array_contains(dialect: str, column: Any, value: Any) -> ColumnElement[bool]:
    """`value in column` for a JSON array column, using the GIN index on PostgreSQL."""
    if dialect == "postgresql":
        return type_coerce(column, JSONB).contains(func.jsonb_build_array(value))
    each = func.json_each(column).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == value))


def list_params(
    dialect: str, *, status: Sequence[Any] | None, q: str | None, cursor: str | None, **filters: Any
) -> dict[str, Any]:
    """The bound parameters of a list or search statement: the filters given, in a fixed
    order (their names select the cached statement), with empty ones left out."""
    given: dict[str, Any] = {
        "status": [s.value for s in status] if status else None,
        **filters,
        "fts_q": search_term(dialect, q) if q else None,
        "after": decode_cursor(cursor) if cursor else None,
    }
    return {name: value for name, value in given.items() if value}
