"""The agents' two busiest reads, `GET /v1/conversations` and `GET /v1/tickets`, answered
without FastAPI's per-request machinery when the request is the common, well-formed case.

FastAPI resolves a dozen query parameters and four dependencies, validates the page of
rows it is handed into response models and serializes them again: about half of a list's
CPU (docs/benchmarks.md, API). This layer sits inside the request guard (request id,
metrics, limits) and does the same work directly: the same query builders and page
reader as the routes, the credential the route resolved before (api/principal_cache.py),
the same rate limit, and the rows serialized as they are (they are the response models'
fields, in order; a test compares both paths byte for byte).

Anything else goes to the routes unchanged: a parameter this layer does not parse
strictly (a malformed or duplicated one, `updated_since`, an unknown name), a caller not
resolved yet, any error. The routes then answer it, errors included, as they always did.
`RELAYDESK_API__FAST_LISTS=false` turns it off."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl

from asyncpg.pgproto.pgproto import UUID as PgUUID
from pydantic_core import to_json
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.deps import autocommit
from api.errors import error_body
from api.principal_cache import PRINCIPALS
from api.schemas.conversations import ConversationPublic
from api.schemas.tickets import TicketPublic
from api.services import conversations, tickets
from api.services.common import page_of
from core.db import raw_read
from core.domain.enums import ConversationStatus, Priority, TicketStatus
from core.runtime import Runtime

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LIMIT = re.compile(r"^[1-9][0-9]{0,2}$")
_JSON = [(b"content-type", b"application/json")]


class _Fallback(Exception):
    """Leave this request to the routes."""


@dataclass(frozen=True)
class _RouteLabel:
    # What the request guard reads for its metrics label (a route's path template).
    path: str


@dataclass(frozen=True)
class _Endpoint:
    path: str
    status: type[ConversationStatus] | type[TicketStatus]
    ids: frozenset[str]
    fields: tuple[str, ...]
    build: Callable[..., Any]
    rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def _same(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows


_ENDPOINTS = {
    "/v1/conversations": _Endpoint(
        "/v1/conversations",
        ConversationStatus,
        frozenset({"channel_id", "assignee_id", "team_id", "customer_id"}),
        tuple(ConversationPublic.model_fields),
        conversations.conversation_query,
        _same,
    ),
    "/v1/tickets": _Endpoint(
        "/v1/tickets",
        TicketStatus,
        frozenset({"assignee_id", "team_id", "requester_id", "channel_id"}),
        tuple(TicketPublic.model_fields),
        tickets.ticket_query,
        tickets.rows_to_public,
    ),
}
_PRIORITIES = frozenset(p.value for p in Priority)


def _filters(endpoint: _Endpoint, query: bytes) -> tuple[dict[str, Any], int | None]:
    """The builder's keyword arguments and the page size, parsed as strictly as the route
    would accept them; _Fallback for anything else."""
    filters: dict[str, Any] = {}
    limit: int | None = None
    statuses: list[Any] = []
    seen: set[str] = set()
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if not value:
            raise _Fallback
        if name == "status":
            try:
                statuses.append(endpoint.status(value))
            except ValueError:
                raise _Fallback from None
            continue
        if name in seen:
            raise _Fallback
        seen.add(name)
        if name in endpoint.ids:
            if not _UUID.match(value):
                raise _Fallback
            filters[name] = uuid.UUID(value)
        elif name == "priority" and value in _PRIORITIES:
            filters[name] = Priority(value)
        elif (
            (name == "tag" and len(value) <= 64)
            or (name == "q" and len(value) <= 500)
            or name == "cursor"
        ):
            filters[name] = value
        elif name == "limit" and _LIMIT.match(value) and int(value) <= 500:
            limit = int(value)
        else:
            raise _Fallback
    if statuses:
        filters["status"] = statuses
    return filters, limit


def _plain(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The response model's fields of a row, in order, with asyncpg's UUIDs as strings:
    pydantic-core serializes that subclass of `uuid.UUID` through its slow, inferring path
    (a page of 50 conversations: 0.34 ms against 0.13 ms). Lists of ids and the SLA view
    carry UUIDs too."""
    plain: dict[str, Any] = {}
    for name in fields:
        value = row[name]
        kind = type(value)
        if kind is PgUUID:
            value = str(value)
        elif kind is list and value and type(value[0]) is PgUUID:
            value = [str(item) for item in value]
        elif kind is dict:
            value = {k: str(v) if type(v) is PgUUID else v for k, v in value.items()}
        plain[name] = value
    return plain


def _credential(headers: list[tuple[bytes, bytes]]) -> str:
    api_key = authorization = None
    for name, value in headers:
        if name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
    if api_key:
        return "key " + api_key
    if authorization and authorization.lower().startswith("bearer "):
        return "bearer " + authorization[7:].strip()
    raise _Fallback


class _DialectOf:
    """What the query builders ask of a session: its bind, for the dialect."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sync = engine.sync_engine

    def get_bind(self) -> Engine:
        return self._sync


class FastLists:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self._engine = autocommit(runtime.engine)
        self._dialect = cast(AsyncSession, _DialectOf(runtime.engine))
        # The driver read is PostgreSQL's (core/db/raw_read.py).
        self._usable = runtime.engine.dialect.name == "postgresql"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = _ENDPOINTS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if (
            endpoint is None
            or scope["method"] != "GET"
            or not self._usable
            or not self.runtime.settings.api.fast_lists
        ):
            await self.app(scope, receive, send)
            return
        try:
            status, body, headers = await self._answer(endpoint, scope)
        except Exception:
            # The route answers it (a fallback, a refused parameter, any error) its own way.
            await self.app(scope, receive, send)
            return
        scope["route"] = _RouteLabel(endpoint.path)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self, endpoint: _Endpoint, scope: Scope
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        runtime = self.runtime
        principal = PRINCIPALS.get(runtime, _credential(scope["headers"]))
        if principal is None:
            raise _Fallback
        filters, limit = _filters(endpoint, scope.get("query_string", b""))
        # Built before the rate limit counts the request: a parameter the builder refuses
        # (a bad cursor) falls back to the route, which counts it once. The builders ask
        # their session only for its dialect.
        statement, params = endpoint.build(self._dialect, principal.tenant_id, **filters)
        allowed, reset = await runtime.rate_limiter.check(principal.actor_id)
        if not allowed:
            per_minute = runtime.rate_limiter.per_minute
            message = f"rate limit of {per_minute} requests per minute exceeded"
            body = to_json(error_body("rate_limited", message))
            return 429, body, [*_JSON, (b"retry-after", str(reset).encode())]
        size = limit or runtime.settings.api.page_size_default
        # A connection straight from the engine, in autocommit: a session around it cost
        # 40 µs more per request, for nothing a single read needs.
        async with self._engine.connect() as connection:
            found = await raw_read.fetch_dicts_on(
                connection, statement, {**params, "limit": size + 1}
            )
        rows, next_cursor = page_of(found, size)
        items = [_plain(row, endpoint.fields) for row in endpoint.rows(rows)]
        return 200, to_json({"items": items, "next_cursor": next_cursor}), _JSON
