"""Rate limiting per credential on the real Redis, and its readiness probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from core.domain.enums import Role
from core.ratelimit import RedisWindowCounter
from tests.conftest import PostgresDatabase, require_env, serving
from tests.factories import Backend, create_api_key, expect, expect_error, make_tenant

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

LIMIT = 5


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def redis_backend(postgres: PostgresDatabase) -> AsyncIterator[Backend]:
    redis_url = require_env("RELAYDESK_TEST_REDIS_URL")
    settings = postgres.settings(
        await postgres.url(), redis_url=redis_url, api={"rate_limit_per_minute": LIMIT}
    )
    async with serving("postgres+redis", settings) as ready:
        assert isinstance(ready.runtime.counter, RedisWindowCounter)
        yield ready


async def _fresh_window(room: float = 3) -> None:
    # The window is the wall-clock minute: start a burst where it cannot straddle two.
    left = 60 - time.time() % 60
    if left < room:
        await asyncio.sleep(left + 0.1)


async def test_readyz_reports_redis(redis_backend: Backend) -> None:
    body = expect(await redis_backend.client.get("/readyz"), 200)
    assert body["checks"] == {"database": {"status": "up"}, "redis": {"status": "up"}}
    assert body["mode"] == "production"


async def test_sixth_request_in_a_minute_is_429(redis_backend: Backend) -> None:
    t = await make_tenant(redis_backend)
    key = await create_api_key(t, Role.AGENT)
    headers = {"X-API-Key": key["key"]}
    await _fresh_window()
    window = int(time.time()) // 60
    for _ in range(LIMIT):
        expect(await t.client.get("/v1/tickets", headers=headers), 200)
    limited = await t.client.get("/v1/tickets", headers=headers)
    error = expect_error(limited, 429, "rate_limited")
    assert str(LIMIT) in error["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Writes are limited as well, and the count lives in Redis with an expiry.
    expect_error(await t.client.post("/v1/tickets", json={"subject": "x"}, headers=headers), 429)
    redis = Redis.from_url(require_env("RELAYDESK_TEST_REDIS_URL"))
    try:
        name = f"relaydesk:rl:{key['id']}:{window}"
        assert int(await redis.get(name) or 0) == LIMIT + 2
        assert 0 < await redis.ttl(name) <= 61
    finally:
        await redis.aclose()


async def test_limits_are_per_credential(redis_backend: Backend) -> None:
    t = await make_tenant(redis_backend)
    first = {"X-API-Key": (await create_api_key(t, Role.VIEWER))["key"]}
    await _fresh_window()
    for _ in range(LIMIT):
        expect(await t.client.get("/v1/users", headers=first), 200)
    expect_error(await t.client.get("/v1/users", headers=first), 429)
    # The same tenant's other credentials have budgets of their own.
    expect(await t.client.get("/v1/users", headers=t.viewer.headers), 200)
    expect(await t.client.get("/v1/users", headers=t.agent.headers), 200)
    # Unauthenticated operations endpoints are never limited.
    for _ in range(LIMIT + 1):
        expect(await t.client.get("/healthz"), 200)
