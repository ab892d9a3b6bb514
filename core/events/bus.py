"""The event bus port, its Kafka adapter and the in-process twin used in embedded mode."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class KafkaEventBus:
    """Idempotent producer with `acks=all`: a retried send is not written twice."""

    def __init__(self, bootstrap_servers: str, topic_prefix: str = "") -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self._producer: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        async with self._lock:
            if self._producer is not None:
                return
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
