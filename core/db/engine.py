"""Engine and session factory for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_core import from_json
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    dsn = settings.database_dsn
    url = make_url(dsn)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(dsn, settings)
    engine = create_async_engine(
        dsn,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        echo=settings.database.echo,
        # pydantic's Rust parser reads the small JSON documents rows hold (tags, custom
        # fields; a page of 50 tickets has 100) 5x faster than `json.loads`.
        json_deserializer=from_json,
    )
    _replace_closed_connections(engine)
    return engine


def _replace_closed_connections(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling without a round trip.

    `pool_pre_ping` on asyncpg sends BEGIN, a ping and ROLLBACK at every checkout: three
    round trips per request, a tenth of the API's CPU on a list (bench/api_bench.py). The
    driver already knows when the server closed a connection (a restart, a terminated
    backend): such a connection is replaced before use, as a failed ping would be. One that
    breaks in use is invalidated by SQLAlchemy's disconnect detection."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed this connection")


def _sqlite_engine(dsn: str, settings: Settings) -> AsyncEngine:
    database = make_url(dsn).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        dsn,
        echo=settings.database.echo,
        connect_args={"timeout": 30},
        json_deserializer=from_json,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that later writes fails with
        # SQLITE_BUSY instead of waiting, which concurrent requests would turn into 500s.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def dialect_name(session: AsyncSession) -> str:
    """ "postgresql" or "sqlite": the few queries that differ by database branch on this."""
    return session.get_bind().dialect.name
