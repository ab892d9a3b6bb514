"""Helpers of the web chat widget's tests: a web channel, a visitor session, visitor
messages over REST, a WebSocket client speaking the widget's frames."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.channel_helpers import add_channel
from tests.factories import TenantCtx, expect, get_json

SECRET = "w" * 40


async def web_channel(t: TenantCtx, **config: Any) -> str:
    return await add_channel(t, "web", "Web chat", {"visitor_token_secret": SECRET, **config})


@dataclass
class VisitorSession:
    channel_id: str
    visitor_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def start_session(client: httpx.AsyncClient, channel_id: str, **body: Any) -> VisitorSession:
    found = expect(await client.post(f"/widget/{channel_id}/session", json=body), 200)
    return VisitorSession(channel_id, found["visitor_id"], found["token"])


async def post_message(
    client: httpx.AsyncClient,
    visitor: VisitorSession,
    text: str,
    client_id: str | None = None,
    status: int = 201,
) -> Any:
    body = {"client_id": client_id or str(uuid.uuid4()), "text": text}
    response = await client.post(
        f"/widget/{visitor.channel_id}/messages", json=body, headers=visitor.headers
    )
    return expect(response, status)


async def conversation_of(t: TenantCtx, channel_id: str) -> dict[str, Any]:
    """The channel's only conversation, with its messages, as an agent sees it."""
    page = await get_json(t, f"/v1/conversations?channel_id={channel_id}")
    assert len(page["items"]) == 1, page
    found: dict[str, Any] = await get_json(t, f"/v1/conversations/{page['items'][0]['id']}")
    return found


def ws_url(base: str, channel_id: str) -> str:
    return base.replace("http://", "ws://") + f"/widget/{channel_id}/ws"


class WidgetSocket:
    """A WebSocket client speaking the widget's frames."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, frame: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(frame))

    async def receive(self, wait_s: float = 5) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), timeout=wait_s)
        frame: dict[str, Any] = json.loads(raw)
        return frame

    async def until(self, kind: str, wait_s: float = 5) -> dict[str, Any]:
        """The next frame of type `kind` (other frames skipped)."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await self.receive(max(left, 0.01))
            if frame["type"] == kind:
                return frame


async def open_socket(
    base: str, visitor: VisitorSession, origin: str | None = None, after: str | None = None
) -> tuple[ClientConnection, WidgetSocket, dict[str, Any]]:
    """A socket authenticated as `visitor`, and its `ready` frame."""
    connection = await connect(ws_url(base, visitor.channel_id), origin=origin)
    socket = WidgetSocket(connection)
    await socket.send({"type": "auth", "token": visitor.token, "after": after})
    ready = await socket.receive()
    assert ready["type"] == "ready", ready
    return connection, socket, ready
