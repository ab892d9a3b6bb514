"""The long-lived resources of a RelayDesk process, built once from `Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db.engine import create_engine, create_sessionmaker
from core.events.bus import EventBus, InMemoryEventBus, KafkaEventBus
from core.events.relay import OutboxRelay
from core.ratelimit import MemoryWindowCounter, RateLimiter, RedisWindowCounter, WindowCounter
from core.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    relay: OutboxRelay
    counter: WindowCounter
    rate_limiter: RateLimiter

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        bus: EventBus
        if settings.kafka.bootstrap_servers:
            bus = KafkaEventBus(settings.kafka.bootstrap_servers, settings.kafka.topic_prefix)
        else:
            bus = InMemoryEventBus()
        counter: WindowCounter = (
            RedisWindowCounter(settings.redis.url) if settings.redis.url else MemoryWindowCounter()
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            bus=bus,
            relay=OutboxRelay(sessions, bus),
            counter=counter,
            rate_limiter=RateLimiter(counter, settings.api.rate_limit_per_minute),
        )

    async def close(self) -> None:
        await self.relay.stop()
        await self.bus.close()
        await self.counter.close()
        await self.engine.dispose()
