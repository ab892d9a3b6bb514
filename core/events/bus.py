"""The event bus port, its Kafka adapter and the in-process twin used in embedded mode."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.events.types import Topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BusMessage:
    topic: str
    key: str
    value: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[BusMessage], Awaitable[None]]


class EventBus(Protocol):
    async def start(self) -> None: ...

    async def publish_batch(self, messages: list[BusMessage]) -> None:
        """Publish in order; return only when every message is durably accepted."""

    async def ping(self) -> None:
        """Raise if the bus cannot be reached."""

    async def close(self) -> None: ...


class InMemoryEventBus:
    """Delivers to in-process subscribers, in publish order. Handlers that fail are logged
    and do not stop later ones: the outbox row is already marked, so this is at-most-once
    per subscriber, which is what embedded mode promises."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self.published: list[BusMessage] = []
        self._max_kept = 10_000

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    async def start(self) -> None:
        return None

    async def publish_batch(self, messages: list[BusMessage]) -> None:
        for message in messages:
            self.published.append(message)
            for handler in self._handlers.get(message.topic, []):
                try:
                    await handler(message)
                except Exception:
                    logger.exception("handler for %s failed", message.topic)
        del self.published[: -self._max_kept]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


_TOPIC_EXISTS = 36


async def ensure_topics(
    bootstrap_servers: str, names: list[str], *, partitions: int, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet (with `partitions` partitions, keyed
    messages of one conversation stay in one of them); returns those created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor) for name in names]
        )
    finally:
        await admin.close()
    created = []
    for name, code, message in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code != _TOPIC_EXISTS:
            raise RuntimeError(f"cannot create Kafka topic {name}: {message} (error {code})")
    return created


class KafkaEventBus:
    """Idempotent producer with `acks=all`: a retried send is not written twice. On start
    it creates the RelayDesk topics that are missing, with `partitions` partitions."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str = "",
        *,
        partitions: int = 6,
        replication_factor: int = 1,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self._producer: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        async with self._lock:
            if self._producer is not None:
                return
            try:
                await ensure_topics(
                    self.bootstrap_servers,
                    [self.topic_prefix + topic.value for topic in Topic],
                    partitions=self.partitions,
                    replication_factor=self.replication_factor,
                )
            except Exception:
                # Brokers that auto-create topics still take the messages.
                logger.warning("could not create the Kafka topics", exc_info=True)
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                value_serializer=lambda v: json.dumps(v, separators=(",", ":")).encode(),
                key_serializer=lambda k: k.encode(),
            )
            await producer.start()
            self._producer = producer

    async def publish_batch(self, messages: list[BusMessage]) -> None:
        await self.start()
        futures = [
            await self._producer.send(
                self.topic_prefix + m.topic,
                m.value,
                key=m.key,
                headers=[(k, v.encode()) for k, v in m.headers.items()],
            )
            for m in messages
        ]
        await asyncio.gather(*futures)

    async def ping(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000
        )
        try:
            await asyncio.wait_for(admin.start(), timeout=5)
            await asyncio.wait_for(admin.list_topics(), timeout=5)
        finally:
            await admin.close()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
