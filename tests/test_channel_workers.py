"""The channel workers' lifecycle: `relaydesk up --no-serve` (the API's lifespan) starts
the delivery worker, the IMAP poller and the template sync and stops them; a stored reply
wakes the delivery worker at once; each can be turned off; `relaydesk channels deliver
--once`; the Serve deployment that owns them, driven directly (one database of its own,
so that no other test's replies are in its queue)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from api.services.channel_workers import ChannelWorkers
from core.cli.channels import deliver
from core.db.migrate import upgrade_async
from core.runtime import Runtime
from core.settings import ChannelSettings, PipelineSettings, Settings
from tests.channel_helpers import reply
from tests.factories import JWT_SECRET, Backend, TenantCtx, expect, make_tenant
from tests.fake_graph import FakeGraph, template
from tests.test_whatsapp import current, inbound_thread, wa_channel

# Polls far apart: only the nudge of a stored reply can send it within the test's wait.
SLOW_POLLS = ChannelSettings(
    delivery_poll_interval_s=600,
    email_poll_interval_s=600,
    template_sync_interval_s=3600,
)


def embedded_settings(data_dir: Path, channels: ChannelSettings = SLOW_POLLS) -> Settings:
    return Settings(
        data_dir=data_dir,
        jwt_secret=JWT_SECRET,
        channels=channels,
        pipeline=PipelineSettings(enabled=False),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def embedded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    settings = embedded_settings(tmp_path_factory.mktemp("workers"))
    await upgrade_async(settings)
    yield settings


async def wait_for(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await check()
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_the_lifespan_runs_the_workers_and_a_reply_wakes_delivery(
    embedded: Settings, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    graph.templates.append(template("welcome", body="Welcome!"))
    runtime = Runtime.build(embedded)
    app = create_app(runtime=runtime, channel_workers=True)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            workers: ChannelWorkers = app.state.channel_workers
            assert set(workers.status()) == {"delivery-worker", "email-poller", "template-sync"}
            assert all(loop.running for loop in workers.loops)
            t = await make_tenant(Backend("embedded", embedded, runtime, client))
            channel_id = await wa_channel(t, graph)
            conversation_id = await inbound_thread(t, channel_id, "15554000001")
            stored = expect(await reply(t, conversation_id, {"text": "Woken"}), 201)
            assert stored["delivery_status"] == "queued"

            async def sent() -> bool:
                return bool((await current(t, stored))["delivery_status"] == "sent")

            assert await wait_for(sent), "the stored reply did not wake the delivery worker"

            # The periodic sync finds the channel that was never synced.
            assert workers.templates is not None
            workers.templates.notify()

            async def synced() -> bool:
                path = f"/v1/channels/{channel_id}/templates"
                listed = expect(await client.get(path, headers=t.agent.headers), 200)
                return bool(listed["items"])

            assert await wait_for(synced)
            assert workers.status()["template-sync"]["synced"] == 1
        assert not any(loop.running for loop in workers.loops)
        assert runtime.on_reply_queued is None
    finally:
        await runtime.close()


async def test_each_worker_can_be_turned_off(embedded: Settings) -> None:
    runtime = Runtime.build(embedded)
    try:
        none = ChannelSettings(
            delivery_worker=False, email_poller=False, template_sync_interval_s=0
        )
        assert ChannelWorkers(runtime, none).loops == []
        only_mail = none.model_copy(update={"email_poller": True})
        assert [loop.name for loop in ChannelWorkers(runtime, only_mail).loops] == ["email-poller"]
        # Tools and tests build the app without them.
        app = create_app(runtime=runtime)
        async with app.router.lifespan_context(app):
            assert app.state.channel_workers is None
    finally:
        await runtime.close()


def test_up_without_serve_asks_for_the_workers(
    embedded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from core.cli import main

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    main._up_uvicorn(embedded, "127.0.0.1", 8000)
    [app] = served

    async def lifespan() -> list[str]:
        async with app.router.lifespan_context(app):
            return [loop.name for loop in app.state.channel_workers.loops if loop.running]

    assert asyncio.run(lifespan()) == ["delivery-worker", "email-poller", "template-sync"]


async def test_deliver_command_once(embedded: Settings, fresh_graph: FakeGraph) -> None:
    runtime = Runtime.build(embedded)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime=runtime)), base_url="http://t"
    )
    try:
        t: TenantCtx = await make_tenant(Backend("embedded", embedded, runtime, client))
        channel_id = await wa_channel(t, fresh_graph)
        conversation_id = await inbound_thread(t, channel_id, "15554000002")
        stored = expect(await reply(t, conversation_id, {"text": "From cron"}), 201)
        assert await deliver(embedded, once=True) == 1
        assert (await current(t, stored))["delivery_status"] == "sent"
        assert await deliver(embedded, once=True) == 0
    finally:
        await client.aclose()
        await runtime.close()


# Serve awaits a replica's async `__del__` at shutdown; here the object is also collected
# afterwards, and Python's own finalizer call of it leaves an unawaited coroutine.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore:coroutine .*__del__. was never awaited:RuntimeWarning")
async def test_the_serve_deployment_owns_one_set_of_workers(embedded: Settings) -> None:
    from serve.deployments.channel_workers import ChannelWorkersDeployment
    from serve.options import AppArgs

    assert ChannelWorkersDeployment.num_replicas == 1
    # The replica's class, constructed as Serve does (on the replica's event loop).
    replica = ChannelWorkersDeployment.func_or_class(AppArgs(data_dir=str(embedded.data_dir)))
    try:
        await replica.check_health()
        status = await replica.status()
        assert set(status) == {"delivery-worker", "email-poller", "template-sync"}
        await replica.nudge()
    finally:
        await replica.__del__()
    with pytest.raises(RuntimeError, match="not running"):
        await replica.check_health()
    del replica
    gc.collect()  # its finalizer runs now, under this test's filters
