"""The push hub (core/push.py): the in-process twin, and Redis pub/sub between processes,
here two hubs on the real Redis; and a web chat reply stored by one API process reaching
a socket held by another."""

from __future__ import annotations

import asyncio
import threading

import pytest
from redis.asyncio import Redis

from api.app import create_app
from core import push
from core.push import LocalPushHub, RedisPushHub
from tests.channel_helpers import reply
from tests.conftest import PostgresDatabase, require_env, serving
from tests.factories import Backend, expect, make_tenant
from tests.live_server import live_server
from tests.widget_helpers import (
    conversation_of,
    open_socket,
    post_message,
    start_session,
    web_channel,
)


async def test_local_hub_hands_pushes_to_listeners_of_their_key() -> None:
    hub = LocalPushHub()
    async with hub.listen("a") as first, hub.listen("a") as second, hub.listen("b") as other:
        await hub.publish("a", {"n": 1})
        assert first.get_nowait() == {"n": 1}
        assert second.get_nowait() == {"n": 1}
        assert other.empty()
        assert hub.listening("a") == 2
    assert hub.listening("a") == 0
    await hub.publish("a", {"n": 2})  # nobody listens: nothing happens


async def test_local_hub_takes_pushes_from_another_thread() -> None:
    hub = LocalPushHub()
    async with hub.listen("k") as queue:
        thread = threading.Thread(target=lambda: asyncio.run(hub.publish("k", {"from": "thread"})))
        thread.start()
        thread.join()
        assert await asyncio.wait_for(queue.get(), timeout=2) == {"from": "thread"}


async def test_local_hub_drops_pushes_beyond_a_full_queue(caplog: pytest.LogCaptureFixture) -> None:
    hub = LocalPushHub()
    async with hub.listen("k") as queue:
        for n in range(push.QUEUE_SIZE + 5):
            hub.deliver("k", {"n": n})
        assert queue.qsize() == push.QUEUE_SIZE
    assert "dropped" in caplog.text


@pytest.fixture
def redis_url() -> str:
    return require_env("RELAYDESK_TEST_REDIS_URL")


@pytest.mark.redis
async def test_redis_hubs_carry_pushes_between_processes(redis_url: str) -> None:
    here, there = RedisPushHub(redis_url), RedisPushHub(redis_url)
    try:
        async with here.listen("visitor-1") as queue, here.listen("visitor-2") as unrelated:
            await there.publish("visitor-1", {"text": "from the other process"})
            assert await asyncio.wait_for(queue.get(), 3) == {"text": "from the other process"}
            # A publisher without a hub of its own (the web sender) reaches it too.
            await push.publish(redis_url, "visitor-1", {"text": "from a sender"})
            assert await asyncio.wait_for(queue.get(), 3) == {"text": "from a sender"}
            # Garbage on the channel is ignored; the subscription lives on.
            client = Redis.from_url(redis_url)
            try:
                await client.publish(push._channel_name(client), b"not json")
            finally:
                await client.aclose()
            await there.publish("visitor-1", {"text": "still here"})
            assert await asyncio.wait_for(queue.get(), 3) == {"text": "still here"}
            assert unrelated.empty()
    finally:
        await here.close()
        await there.close()


@pytest.mark.redis
async def test_redis_databases_do_not_hear_each_other(redis_url: str) -> None:
    base, _, db = redis_url.rpartition("/")
    other_db = f"{base}/{(int(db or 0) + 1) % 16}"
    here = RedisPushHub(redis_url)
    try:
        async with here.listen("k") as queue:
            await push.publish(other_db, "k", {"db": "other"})
            await push.publish(redis_url, "k", {"db": "ours"})
            assert await asyncio.wait_for(queue.get(), 3) == {"db": "ours"}
            await asyncio.sleep(0.2)
            assert queue.empty()
    finally:
        await here.close()


@pytest.mark.redis
@pytest.mark.postgres
async def test_reply_stored_by_another_process_reaches_the_socket(
    postgres: PostgresDatabase, redis_url: str
) -> None:
    """Two API processes (two runtimes, each with its own hub) on one database: the
    socket is held by the first, the agent's reply goes through the second."""
    settings = postgres.settings(await postgres.url(), redis_url=redis_url)
    async with serving("postgres+redis", settings) as a, serving("postgres+redis", settings) as b:
        assert isinstance(a.runtime.push, RedisPushHub)
        assert a.runtime.push is not b.runtime.push
        await _across(a, b)


async def _across(a: Backend, b: Backend) -> None:
    t = await make_tenant(a)
    channel_id = await web_channel(t)
    visitor = await start_session(t.client, channel_id)
    await post_message(t.client, visitor, "Hello from process A")
    conversation = await conversation_of(t, channel_id)
    async with live_server(create_app(runtime=a.runtime)) as url:
        connection, socket, _ = await open_socket(url, visitor)
        async with connection:
            t.backend = b  # the agent's reply is handled by the other process
            sent = expect(await reply(t, conversation["id"], {"text": "Answer via B"}), 201)
            pushed = await socket.until("message", wait_s=2)
            assert pushed["message"]["id"] == sent["provider_message_id"]
