"""The PostgreSQL engine: a connection the server closed is replaced before it is used."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db.engine import create_engine
from tests.conftest import PostgresDatabase

pytestmark = pytest.mark.postgres


async def test_a_connection_the_server_closed_is_replaced_at_checkout(
    postgres: PostgresDatabase,
) -> None:
    url = await postgres.url()
    engine = create_engine(postgres.settings(url))
    try:
        # Two pooled connections, then the server ends both backends (as a restart would).
        async with engine.connect() as first, engine.connect() as second:
            pids = {await c.scalar(text("SELECT pg_backend_pid()")) for c in (first, second)}
        admin = await asyncpg.connect(
            make_url(url).set(drivername="postgresql").render_as_string(False)
        )
        try:
            for pid in pids:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.5)  # the driver reads the server's goodbye
        async with engine.connect() as first, engine.connect() as second:
            now = {await c.scalar(text("SELECT pg_backend_pid()")) for c in (first, second)}
        assert now.isdisjoint(pids)
    finally:
        await engine.dispose()
