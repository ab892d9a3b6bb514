"""The long-lived resources of a RelayDesk process, built once from `Settings`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db.engine import create_engine, create_sessionmaker
from core.events.bus import EventBus, InMemoryEventBus, KafkaEventBus
from core.events.relay import OutboxRelay
from core.push import PushHub, build_push_hub
from core.ratelimit import MemoryWindowCounter, RateLimiter, RedisWindowCounter, WindowCounter
from core.settings import Settings
from core.storage import AttachmentStore, build_attachment_store
from models.service import ModelService


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    relay: OutboxRelay
    counter: WindowCounter
    rate_limiter: RateLimiter
    attachments: AttachmentStore
    # Live pushes to open client connections (the web widget's sockets).
    push: PushHub
    # Built on first use (see `models`), or given: the Serve ingress passes its own.
    model_service: ModelService | None = field(default=None, repr=False)
    # Wakes the delivery worker once a request stored a reply for it: the in-process
    # worker's `notify` (`relaydesk up --no-serve`), a call to the ChannelWorkers
    # deployment (Serve); unset, the worker finds the reply at its next poll.
    on_reply_queued: Callable[[], None] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, models: ModelService | None = None) -> Runtime:
        """The resources `settings` describe; `models` replaces the in-process model service."""
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        bus: EventBus
        if settings.kafka.bootstrap_servers:
            bus = KafkaEventBus(
                settings.kafka.bootstrap_servers,
                settings.kafka.topic_prefix,
                partitions=settings.kafka.partitions,
                replication_factor=settings.kafka.replication_factor,
            )
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
            attachments=build_attachment_store(settings),
            push=build_push_hub(settings.channels.web_push_url),
            model_service=models,
        )

    @property
    def models(self) -> ModelService:
        """The model service; unless one was given, the in-process one, created on first
        use (and loading its models on its first call), so a process that never asks the
        models anything never loads them."""
        if self.model_service is None:
            from models.local import build_local_models

            self.model_service = build_local_models(self.settings, self.sessions)
        return self.model_service

    @models.setter
    def models(self, service: ModelService) -> None:
        self.model_service = service

    def reply_queued(self) -> None:
        """A reply was committed for the delivery worker: wake it, if one is wired."""
        if self.on_reply_queued is not None:
            self.on_reply_queued()

    async def close(self) -> None:
        if self.model_service is not None:
            await self.model_service.close()
        await self.relay.stop()
        await self.bus.close()
        await self.counter.close()
        await self.push.close()
        await self.engine.dispose()
