"""Fixed-window rate limiting: Redis when configured, an in-process twin otherwise."""

from __future__ import annotations

import time
from typing import Any, Protocol


class WindowCounter(Protocol):
    async def hit(self, key: str, window_s: int) -> int:
        """Count one hit in the current window and return the window's count."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryWindowCounter:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, key: str, window_s: int) -> int:
        window = int(time.time()) // window_s
        if len(self._counts) > 100_000:
            # Old windows are dead weight; dropping them all is cheaper than tracking ages.
            self._counts = {k: v for k, v in self._counts.items() if k[1] == window}
        count = self._counts.get((key, window), 0) + 1
        self._counts[(key, window)] = count
        return count

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisWindowCounter:
    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def hit(self, key: str, window_s: int) -> int:
        window = int(time.time()) // window_s
        name = f"relaydesk:rl:{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_s + 1)
            count, _ = await pipe.execute()
        return int(count)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    def __init__(self, counter: WindowCounter, per_minute: int) -> None:
        self.counter = counter
        self.per_minute = per_minute

    async def check(self, key: str) -> tuple[bool, int]:
        """(allowed, seconds until the window resets)."""
        if self.per_minute <= 0:
            return True, 0
        count = await self.counter.hit(key, 60)
        return count <= self.per_minute, 60 - int(time.time()) % 60
