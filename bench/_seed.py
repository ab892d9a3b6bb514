"""Seeds the benchmark database: two tenants and their data by COPY, then migrations.

The generator writes the initial schema (SEED_REVISION); the later migrations then
transform and backfill the data as they would a production database. The big tenant gets
the requested sizes; a second tenant gets 1% of them, interleaved in time, so every
query's tenant filter has rows to skip. Secondary indexes of the bulk tables are dropped
before COPY and rebuilt after it (the same definitions, read from the catalogue), which is
several times faster than maintaining a GIN index row by row."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from tqdm import tqdm

from api.services.tenancy import slugify
from bench._generate import Seeder, TenantPlan
from core.db.migrate import upgrade_async
from core.db.types import uuid7
from core.security import generate_api_key, hash_password
from core.settings import Settings

PASSWORD = "bench-password-1"
JWT_SECRET = "relaydesk-benchmark-secret-0123456789abcdef"
# The revision the generator's rows match; `head` is reached by migrating the seeded data.
SEED_REVISION = "0001"
BULK_TABLES = (
    "customers",
    "customer_identities",
    "conversations",
    "messages",
    "tickets",
    "ticket_conversations",
)
SLA_TARGETS = {
    "low": {"first_response_minutes": 480, "resolution_minutes": 4320},
    "normal": {"first_response_minutes": 240, "resolution_minutes": 2880},
    "high": {"first_response_minutes": 60, "resolution_minutes": 960},
    "urgent": {"first_response_minutes": 15, "resolution_minutes": 240},
}
BUSINESS_HOURS = {
    "timezone": "Europe/Madrid",
    "hours": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
}
_SECONDARY_INDEXES = """
SELECT i.relname AS name, pg_get_indexdef(i.oid) AS ddl
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relname = ANY($1::text[])
  AND t.relnamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
"""


async def _tenants(conn: asyncpg.Connection, names: list[str]) -> list[dict[str, str]]:
    """Tenants, each with an admin user and an admin API key, in SQL: the ORM models
    describe the newest schema, the seed writes the initial one."""
    password_hash = hash_password(PASSWORD)
    now = datetime.now(UTC)
    out = []
    for n, name in enumerate(names):
        tenant_id, admin_id, key = uuid7(), uuid7(), generate_api_key()
        await conn.execute(
            "INSERT INTO tenants (id, name, slug, next_ticket_number, created_at, updated_at) "
            "VALUES ($1, $2, $3, 1, $4, $4)",
            tenant_id, name, slugify(name), now,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO users (id, tenant_id, email, name, role, password_hash, is_active, "
            "created_at, updated_at) VALUES ($1, $2, $3, 'Administrator', 'admin', $4, true, "
            "$5, $5)",
            admin_id, tenant_id, f"admin@{n}.bench.test", password_hash, now,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, role, created_by_id, "
            "created_at) VALUES ($1, $2, 'bench admin key', $3, $4, 'admin', $5, $6)",
            uuid7(), tenant_id, key.prefix, key.key_hash, admin_id, now,
        )  # fmt: skip
        out.append({"tenant_id": str(tenant_id), "api_key": key.plaintext})
    return out


async def bulk_load(conn: asyncpg.Connection, tickets: int, messages: int) -> list[dict[str, str]]:
    """Two tenants and all their data in one transaction, COPY with the secondary indexes
    rebuilt after. Returns each tenant's id and admin API key."""
    async with conn.transaction():
        # Superuser only: skips per-row FK checks; the generator keeps references valid.
        # (At the initial revision there are no other triggers to skip.)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
        except asyncpg.InsufficientPrivilegeError:
            pass
        await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        boot = await _tenants(conn, ["Bench Co", "Other Co"])
        tenants = [
            TenantPlan(uuid.UUID(boot[0]["tenant_id"]), tickets, messages, 40, 5, 0),
            TenantPlan(
                uuid.UUID(boot[1]["tenant_id"]),
                max(1, tickets // 100),
                max(1, messages // 100),
                5,
                2,
                10_000_000,
            ),
        ]
        password_hash = await conn.fetchval("SELECT password_hash FROM users LIMIT 1")
        indexes = await conn.fetch(_SECONDARY_INDEXES, list(BULK_TABLES))
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["name"]}"')
        seeder = Seeder(conn)
        total = sum(p.messages for p in tenants)
        with tqdm(total=total, desc="seed messages", unit="msg", unit_scale=True) as bar:
            for plan in tenants:
                await seeder.people(plan, password_hash)
                await seeder.tenant(plan, bar)
        await seeder.copy("ticket_conversations", ("ticket_id", "conversation_id"), seeder.links)
        for row in tqdm(indexes, desc="rebuild indexes", unit="idx"):
            await conn.execute(row["ddl"])
        for plan in tenants:
            await conn.execute(
                "INSERT INTO sla_policies (id, tenant_id, name, is_default, targets, "
                "business_hours, created_at, updated_at) "
                "VALUES ($1, $2, 'Standard', true, $3, $4, now(), now())",
                seeder.ids.at(seeder.start),
                plan.tenant_id,
                json.dumps(SLA_TARGETS),
                json.dumps(BUSINESS_HOURS),
            )
    return boot


async def _vacuum(conn: asyncpg.Connection) -> None:
    for table in (*BULK_TABLES, "users", "teams", "channels", "tenants", "sla_policies"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _recreate_database(url: str) -> None:
    name = make_url(url).database
    admin = await asyncpg.connect(asyncpg_dsn(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _existing(url: str, tickets: int, messages: int) -> dict[str, Any] | None:
    """The stored seed description when the database holds at least the requested data."""
    try:
        conn = await asyncpg.connect(asyncpg_dsn(url))
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        if await conn.fetchval("SELECT to_regclass('bench_seed')") is None:
            return None
        raw = await conn.fetchval("SELECT info FROM bench_seed WHERE id = 1")
        info: dict[str, Any] | None = json.loads(raw) if raw else None
        if not info or info["tickets"] != tickets or info["messages"] != messages:
            return None
        tenant = uuid.UUID(info["tenants"][0]["tenant_id"])
        n_tickets = await conn.fetchval("SELECT count(*) FROM tickets WHERE tenant_id = $1", tenant)
        n_messages = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE tenant_id = $1", tenant
        )
        return info if n_tickets >= tickets and n_messages >= messages else None
    finally:
        await conn.close()


async def ensure_seeded(
    url: str, *, tickets: int, messages: int, reseed: bool, data_dir: Path
) -> dict[str, Any]:
    """Seed unless the database already holds this size of data; returns the seed info."""
    settings = Settings(database_url=url, jwt_secret=JWT_SECRET, data_dir=data_dir)
    if not reseed:
        info = await _existing(url, tickets, messages)
        if info is not None:
            await upgrade_async(settings)  # migrations added since the seed
            info["seeded_now"] = False
            return info
    started = time.perf_counter()
    await _recreate_database(url)
    # The generator writes the initial schema; later migrations then transform and backfill
    # the data as they would a production database (e.g. the tickets' search documents).
    await upgrade_async(settings, SEED_REVISION)
    migrated = time.perf_counter()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        boot = await bulk_load(conn, tickets, messages)
        loaded = time.perf_counter()
        await _vacuum(conn)
        analyzed = time.perf_counter()
        await upgrade_async(settings)
        upgraded = time.perf_counter()
        await _vacuum(conn)
        info = {
            "tickets": tickets,
            "messages": messages,
            "password": PASSWORD,
            "tenants": [
                {"tenant_id": b["tenant_id"], "api_key": b["api_key"], "domain": f"{n}.bench.test"}
                for n, b in enumerate(boot)
            ],
            "seconds": {
                "migrate_initial": round(migrated - started, 1),
                "copy_and_index": round(loaded - migrated, 1),
                "vacuum_analyze": round(analyzed - loaded + time.perf_counter() - upgraded, 1),
                "migrate_to_head": round(upgraded - analyzed, 1),
                "total": round(time.perf_counter() - started, 1),
            },
            "seeded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        await conn.execute("CREATE TABLE bench_seed (id int PRIMARY KEY, info jsonb NOT NULL)")
        await conn.execute("INSERT INTO bench_seed VALUES (1, $1)", json.dumps(info))
    finally:
        await conn.close()
    info["seeded_now"] = True
    return info


async def seed_and_report(
    database_url: str, *, tickets: int, messages: int, reseed: bool
) -> dict[str, Any]:
    """`ensure_seeded` with a throwaway data dir, saying which seed a run uses."""
    print(f"database: {make_url(database_url).render_as_string(hide_password=True)}")
    info = await ensure_seeded(
        database_url,
        tickets=tickets,
        messages=messages,
        reseed=reseed,
        data_dir=Path(tempfile.mkdtemp(prefix="relaydesk-bench-")),
    )
    action = "seeded" if info["seeded_now"] else "reusing the seed of"
    print(f"{action} {info['seeded_at']} ({info['seconds']['total']} s to seed)")
    return info
