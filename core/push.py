"""Live pushes to clients that hold a connection open (the web widget's sockets).

The port is two calls: `publish(key, payload)` and `listen(key)`, whose queue receives
every payload published under `key` while it is open. `LocalPushHub` is the in-process
twin (embedded mode, one process); `RedisPushHub` carries pushes over Redis pub/sub, so a
reply stored by one API process reaches a socket held by another. Pushes are best effort
by design: a listener that misses one (a full queue, Redis restarting) reads the
database, which holds every message, on its next catch-up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Payload = dict[str, Any]
# A slow listener drops pushes beyond this many instead of growing without bound.
QUEUE_SIZE = 256
_RECONNECT_MAX_S = 30.0


class PushHub(Protocol):
    async def publish(self, key: str, payload: Payload) -> None:
        """Hand `payload` to every listener of `key`, in any process sharing the hub."""

    def listen(self, key: str) -> AbstractAsyncContextManager[asyncio.Queue[Payload]]:
        """A queue of what is published under `key` while the context is open."""

    async def close(self) -> None: ...


def _offer(queue: asyncio.Queue[Payload], payload: Payload) -> None:
    try:
        queue.put_nowait(payload)
    except asyncio.QueueFull:
        logger.warning("push listener is full: a push was dropped (its catch-up reads it)")


class LocalPushHub:
    """Listeners of this process. Each queue belongs to the event loop that opened it, so
    a publisher on another loop (another thread) hands over through that loop."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Payload]]]]
        self._listeners = defaultdict(set)
        self._lock = threading.Lock()

    def deliver(self, key: str, payload: Payload) -> int:
        """Offer `payload` to this process's listeners of `key`; how many there were."""
        with self._lock:
            targets = list(self._listeners.get(key, ()))
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, queue in targets:
            if loop is running:
                _offer(queue, payload)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_offer, queue, payload)
        return len(targets)

    async def publish(self, key: str, payload: Payload) -> None:
        self.deliver(key, payload)

    @asynccontextmanager
    async def listen(self, key: str) -> AsyncIterator[asyncio.Queue[Payload]]:
        queue: asyncio.Queue[Payload] = asyncio.Queue(QUEUE_SIZE)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._listeners[key].add(entry)
        try:
            yield queue
        finally:
            with self._lock:
                listeners = self._listeners.get(key)
                if listeners is not None:
                    listeners.discard(entry)
                    if not listeners:
                        del self._listeners[key]

    def listening(self, key: str) -> int:
        with self._lock:
            return len(self._listeners.get(key, ()))

    async def close(self) -> None:
        return None


# The process's own hub: every runtime without Redis shares it, as does every publisher.
LOCAL_HUB = LocalPushHub()


def _redis(url: str) -> Any:
    from redis.asyncio import Redis

    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def _channel_name(client: Any) -> str:
    # Pub/sub ignores the database number: name it, so deployments sharing one Redis
    # under different databases do not hear each other.
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return f"relaydesk:push:{db}"


def _encode(key: str, payload: Payload) -> str:
    return json.dumps({"key": key, "payload": payload}, separators=(",", ":"))


class RedisPushHub:
    """One subscription per process on one Redis channel; each push names its key and is
    handed to this process's listeners of it. One channel rather than one per key keeps
    the subscription static: pushes are agent replies, human-paced, so every process
    reading every push costs little."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = _redis(url)
        self._channel = _channel_name(self._client)
        self._local = LocalPushHub()
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def publish(self, key: str, payload: Payload) -> None:
        await self._client.publish(self._channel, _encode(key, payload))

    @asynccontextmanager
    async def listen(self, key: str) -> AsyncIterator[asyncio.Queue[Payload]]:
        if self._reader is None or self._reader.done():
            self._subscribed = asyncio.Event()
            self._reader = asyncio.create_task(self._read(), name="push-reader")
        async with self._local.listen(key) as queue:
            # Pushes published before the subscription is live would be missed; wait
            # briefly for it (the catch-up covers a Redis that is down).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), timeout=2)
            yield queue

    async def _read(self) -> None:
        delay = 0.5
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                delay = 0.5
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        self._dispatch(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("push subscription lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, data: Any) -> None:
        try:
            decoded = json.loads(data)
            self._local.deliver(str(decoded["key"]), dict(decoded["payload"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed push on %s", self._channel)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._client.aclose()


def build_push_hub(url: str) -> PushHub:
    return RedisPushHub(url) if url else LOCAL_HUB


async def publish(url: str, key: str, payload: Payload) -> None:
    """Publish without a hub of one's own (a sender): over a short-lived Redis connection
    when `url` is set, else to this process's listeners."""
    if not url:
        LOCAL_HUB.deliver(key, payload)
        return
    client = _redis(url)
    try:
        await client.publish(_channel_name(client), _encode(key, payload))
    finally:
        await client.aclose()
