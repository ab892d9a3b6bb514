"""What the load phases send: request bodies, search terms and the SQL floor statements.

The floor statements are compiled from the services' own query builders with the asyncpg
dialect, so the SQL phase runs byte for byte the statement the API sends."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from api.services.conversations import conversation_query
from api.services.tickets import ticket_query
from bench._corpus import COMMON_QUERIES, PRODUCT_WORDS, TAGS, TextGen
from bench._seed import asyncpg_dsn
from core.domain.enums import ConversationStatus

AGENTS = 8  # distinct signed-in agents the clients act as


@dataclass
class Fixture:
    tenant_id: uuid.UUID
    api_key: str
    tokens: list[tuple[str, str]]  # (bearer token, user id)
    channels: dict[str, str]
    identities: list[tuple[str, str]]  # (channel type, identity value) of seeded customers
    conversation_ids: list[str]
    search_terms: dict[str, list[str]]
    tags: tuple[str, ...] = TAGS
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    new_customers: int = 0

    def __post_init__(self) -> None:
        self.text = TextGen(self.rng)
        self.run_digits = f"{random.randrange(10**6):06d}"

    def inbound_body(self, unique: str) -> dict[str, Any]:
        """70% from seeded customers (open thread or a new one), 30% from new customers."""
        rng = self.rng
        if rng.random() < 0.7:
            kind, value = rng.choice(self.identities)
            customer: dict[str, Any] = {"external_id": value}
        else:
            self.new_customers += 1
            kind = "whatsapp" if rng.random() < 0.7 else "email"
            serial = f"{self.run_digits}{self.new_customers:07d}"
            value = f"99{serial}" if kind == "whatsapp" else f"new.{serial}@example.org"
            customer = {"external_id": value, "name": self.text.name()}
        return {
            "channel_id": self.channels[kind],
            "customer": customer,
            "text": self.text.inbound_text(),
            "provider_message_id": f"bench.{unique}",
        }

    def ticket_body(self, n: int) -> dict[str, Any]:
        """Half from a conversation (subject taken from it), half standalone."""
        rng = self.rng
        body: dict[str, Any] = {
            "priority": rng.choices(("low", "normal", "high", "urgent"), (20, 55, 20, 5))[0],
            "tags": rng.sample(self.tags, rng.choice((0, 1, 2))),
            "assignee_id": self.tokens[n % len(self.tokens)][1],
        }
        if n % 2:
            body["conversation_id"] = rng.choice(self.conversation_ids)
        else:
            subject, text = self.text.opening(self.text.language(), self.text.order())
            body.update(subject=subject, description=text, type="incident")
        return body


async def load_fixture(url: str, base: str, info: dict[str, Any]) -> Fixture:
    tenant = info["tenants"][0]
    tenant_id = uuid.UUID(tenant["tenant_id"])
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        channels = {
            r["type"]: str(r["id"])
            for r in await conn.fetch(
                "SELECT id, type FROM channels WHERE tenant_id = $1", tenant_id
            )
        }
        identities = [
            ((r["kind"]), r["value"])
            for r in await conn.fetch(
                "SELECT kind, value FROM customer_identities WHERE tenant_id = $1 "
                "AND kind IN ('whatsapp', 'email') ORDER BY random() LIMIT 20000",
                tenant_id,
            )
        ]
        conversation_ids = [
            str(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM conversations WHERE tenant_id = $1 ORDER BY random() LIMIT 5000",
                tenant_id,
            )
        ]
        # Order numbers: each matches the messages of one thread.
        orders = [
            r["n"]
            for r in await conn.fetch(
                "SELECT substring(text from '[0-9]{7}') AS n FROM messages TABLESAMPLE "
                "SYSTEM (1) WHERE tenant_id = $1 AND text ~ '[0-9]{7}' LIMIT 6",
                tenant_id,
            )
        ]
    finally:
        await conn.close()
    tokens = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for i in range(1, AGENTS + 1):
            email = f"agent{i}@{tenant['domain']}"
            r = await client.post(
                "/v1/auth/token", json={"email": email, "password": info["password"]}
            )
            r.raise_for_status()
            tokens.append((r.json()["access_token"], r.json()["user_id"]))
    return Fixture(
        tenant_id=tenant_id,
        api_key=tenant["api_key"],
        tokens=tokens,
        channels=channels,
        identities=identities,
        conversation_ids=conversation_ids,
        search_terms={
            "common_word": list(COMMON_QUERIES),
            "product_name": list(PRODUCT_WORDS[:6]),
            "order_number": orders,
        },
    )


def _compile(query: Select[Any], params: dict[str, Any]) -> tuple[str, list[Any]]:
    """The SQL text asyncpg receives for `query` with `params`, and its arguments (the
    expansion SQLAlchemy does at execution: IN lists rendered for their values)."""
    compiled = query.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    state = compiled.construct_expanded_state(params)
    return state.statement, list(state.positional_parameters)


async def sql_statements(url: str, fx: Fixture) -> tuple[str, list[Any], str]:
    """(list SQL, its arguments, search SQL taking $1 tenant, $2 text, $3 limit)."""
    # The query builders branch on the session's dialect; this session never connects.
    engine = create_async_engine(url)
    try:
        session = AsyncSession(engine)
        query, params = conversation_query(session, fx.tenant_id, status=[ConversationStatus.OPEN])
        search, search_params = ticket_query(session, fx.tenant_id, q="-")
    finally:
        await engine.dispose()
    sql, list_args = _compile(query, {**params, "limit": 51})
    search_sql, args = _compile(search, {**search_params, "limit": 51})
    if args != [fx.tenant_id, "-", 51]:
        raise RuntimeError(f"unexpected search parameters {args}: update bench/_queries.py")
    return sql, list_args, search_sql
