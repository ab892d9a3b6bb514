"""The web chat widget's WebSocket on a real server: history, messages in, agent replies
pushed, receipts, reconnects, the catch-up of lost pushes, frame errors and refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from tests.channel_helpers import reply, stored_count
from tests.factories import Backend, TenantCtx, expect
from tests.live_server import live_server
from tests.widget_helpers import (
    WidgetSocket,
    conversation_of,
    open_socket,
    post_message,
    start_session,
    web_channel,
    ws_url,
)


@pytest_asyncio.fixture(loop_scope="session")
async def live(backend: Backend) -> AsyncIterator[str]:
    """The backend's app on a real loopback server (WebSockets need one)."""
    async with live_server(create_app(runtime=backend.runtime)) as url:
        yield url


async def test_socket_history_messages_and_pushed_replies(tenant: TenantCtx, live: str) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    await post_message(tenant.client, visitor, "Earlier, over REST")
    connection, socket, ready = await open_socket(live, visitor)
    async with connection:
        assert ready["visitor_id"] == visitor.visitor_id
        assert ready["config"]["title"] == "Chat with us"
        assert [m["text"] for m in ready["messages"]] == ["Earlier, over REST"]

        client_id = str(uuid.uuid4())
        await socket.send({"type": "message", "client_id": client_id, "text": "And now live"})
        echo = await socket.until("message")
        assert echo["client_id"] == client_id
        assert echo["created"] is True
        assert echo["message"]["id"] == client_id
        # A retry on the socket (the widget lost the echo) is the same message.
        await socket.send({"type": "message", "client_id": client_id, "text": "And now live"})
        retry = await socket.until("message")
        assert retry["created"] is False
        assert await stored_count(tenant, channel_id) == 2

        conversation = await conversation_of(tenant, channel_id)
        assert [m["text"] for m in conversation["messages"]] == [
            "Earlier, over REST",
            "And now live",
        ]
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = expect(await reply(tenant, conversation["id"], {"text": "Hello from an agent"}), 201)
        pushed = await socket.until("message", wait_s=2)
        elapsed = loop.time() - started
        assert pushed["message"]["id"] == sent["provider_message_id"]
        assert pushed["message"]["text"] == "Hello from an agent"
        assert pushed["message"]["author"] == "agent"
        assert elapsed < 2

        await socket.send(
            {"type": "receipt", "ids": [sent["provider_message_id"]], "status": "delivered"}
        )
        receipt = await socket.until("receipt")
        assert receipt["updated"] == 1
        await socket.send({"type": "ping"})
        assert (await socket.until("pong"))["type"] == "pong"
    conversation = await conversation_of(tenant, channel_id)
    assert conversation["messages"][-1]["delivery_status"] == "delivered"


async def test_socket_reconnect_gets_what_it_missed(tenant: TenantCtx, live: str) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    connection, _, ready = await open_socket(live, visitor)
    await connection.close()
    await post_message(tenant.client, visitor, "Sent while the socket was away")
    conversation = await conversation_of(tenant, channel_id)
    sent = expect(await reply(tenant, conversation["id"], {"text": "Answer while away"}), 201)
    connection, _, again = await open_socket(live, visitor, after=ready["cursor"])
    async with connection:
        ids = [m["id"] for m in again["messages"]]
        assert sent["provider_message_id"] in ids
        assert [m["text"] for m in again["messages"]] == [
            "Sent while the socket was away",
            "Answer while away",
        ]


async def test_socket_frame_errors_leave_it_open(tenant: TenantCtx, live: str) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    connection, socket, _ = await open_socket(live, visitor)
    async with connection:
        await socket.connection.send("not json")
        assert (await socket.until("error"))["error"]["code"] == "malformed_json"
        await socket.connection.send(b"\xff\x00binary")
        assert (await socket.until("error"))["error"]["code"] == "malformed_json"
        await socket.connection.send(b'{"type": "ping"}')
        assert (await socket.until("pong"))["type"] == "pong"
        await socket.send({"type": "dance"})
        assert (await socket.until("error"))["error"]["code"] == "unknown_frame"
        client_id = str(uuid.uuid4())
        await socket.send({"type": "message", "client_id": client_id, "text": "x" * 5000})
        error = await socket.until("error")
        assert error["error"]["code"] == "text_too_long"
        assert error["client_id"] == client_id
        await socket.send({"type": "message", "text": "no id"})
        assert (await socket.until("error"))["error"]["code"] == "validation_error"
        await socket.send({"type": "ping"})
        assert (await socket.until("pong"))["type"] == "pong"
    assert await stored_count(tenant, channel_id) == 0


async def _refused(
    url: str, first: dict[str, object] | None, origin: str | None = None
) -> tuple[int, dict[str, object]]:
    async with connect(url, origin=origin) as connection:
        socket = WidgetSocket(connection)
        if first is not None:
            await socket.send(first)
        error = await socket.receive()
        with pytest.raises(ConnectionClosed) as closed:
            await socket.receive()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, error


async def test_socket_refusals_close_with_a_code(tenant: TenantCtx, live: str) -> None:
    channel_id = await web_channel(tenant, allowed_origins=["https://shop.example"])
    visitor = await start_session(tenant.client, channel_id)
    other = await start_session(tenant.client, await web_channel(tenant))
    url = ws_url(live, channel_id)
    cases = [
        (url, {"type": "auth", "token": "nope"}, None, 4401, "invalid_visitor_token"),
        (url, {"type": "auth", "token": other.token}, None, 4401, "invalid_visitor_token"),
        (url, {"type": "message", "text": "hi"}, None, 4401, "missing_visitor_token"),
        (
            url,
            {"type": "auth", "token": visitor.token},
            "https://evil.example",
            4403,
            "origin_not_allowed",
        ),
        (
            ws_url(live, str(uuid.uuid4())),
            {"type": "auth", "token": visitor.token},
            None,
            4404,
            "channel_not_found",
        ),
    ]
    for target, first, origin, code, error_code in cases:
        closed, frame = await _refused(target, first, origin)
        assert (closed, frame["type"]) == (code, "error"), frame
        assert frame["error"]["code"] == error_code
    # The allowed origin gets in.
    connection, _, _ = await open_socket(live, visitor, origin="https://shop.example")
    await connection.close()


async def test_socket_without_auth_times_out(
    tenant: TenantCtx, live: str, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend.runtime.settings.widget, "auth_timeout_seconds", 0.2)
    channel_id = await web_channel(tenant)
    closed, frame = await _refused(ws_url(live, channel_id), None)
    assert closed == 4401
    assert frame["error"]["code"] == "auth_timeout"


async def test_socket_catches_up_on_pushes_it_missed(
    tenant: TenantCtx, live: str, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply whose push never arrives (here: published nowhere) reaches the socket by
    its periodic read of the database."""
    monkeypatch.setattr(backend.runtime.settings.widget, "catch_up_seconds", 0.3)
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    await post_message(tenant.client, visitor, "Hello")
    connection, socket, _ = await open_socket(live, visitor)
    async with connection:
        conversation = await conversation_of(tenant, channel_id)
        monkeypatch.setattr(backend.settings.channels, "web_push_url", "redis://127.0.0.1:1/0")
        sent = expect(await reply(tenant, conversation["id"], {"text": "Lost push"}), 201)
        assert sent["delivery_status"] == "sent"
        caught = await socket.until("message", wait_s=3)
        assert caught["message"]["id"] == sent["provider_message_id"]
    assert await stored_count(tenant, channel_id) == 2


async def test_stored_reply_is_sent_once_to_the_socket(tenant: TenantCtx, live: str) -> None:
    """Pushed, then read again by the catch-up: the socket sends it once."""
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    await post_message(tenant.client, visitor, "Hi")
    conversation = await conversation_of(tenant, channel_id)
    connection, socket, ready = await open_socket(live, visitor)
    async with connection:
        await reply(tenant, conversation["id"], {"text": "Once"})
        first = await socket.until("message")
        assert first["message"]["text"] == "Once"
    # The stored reply is in the history of a new socket too.
    connection, _, again = await open_socket(live, visitor, after=ready["cursor"])
    async with connection:
        assert [m["text"] for m in again["messages"]].count("Once") == 1
