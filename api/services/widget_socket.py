"""One widget's WebSocket: authenticate, send the history, then carry the visitor's
messages in and the agent's replies out until either side closes.

Frames are JSON objects with a `type`. The widget sends `auth` first (`token`, optional
`after` cursor), then `message` (`client_id`, `text`), `receipt` (`ids`, `status`) and
`ping`. The server answers `ready` (visitor id, widget config, history, cursor), then
`message` (a stored visitor message with its `client_id`, or an agent reply), `receipt`,
`pong` and `error` (the API's error envelope). A refusal that ends the socket closes it
with 4000 + the HTTP status it would have had (4401 bad token, 4403 origin, 4404
channel); errors about one frame leave it open."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from api.errors import ApiError, BadRequest, Unauthorized, error_body
from api.services import widget
from api.services.widget import WidgetChannel
from connectors.web.payload import ReceiptIn, VisitorMessageIn, push_key
from connectors.web.token import Visitor
from core.runtime import Runtime

logger = logging.getLogger(__name__)

# Larger frames end the socket (1009): a message is at most WidgetSettings.max_text_chars.
MAX_FRAME_CHARS = 256 * 1024
# Ids of messages a socket has sent, to skip them when a catch-up reads them again.
_SENT_MEMORY = 2000


def _close_code(exc: ApiError) -> int:
    return 4000 + exc.status_code


@contextlib.asynccontextmanager
async def _session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """A session as the API's request dependency gives one: events written in it are
    handed to the outbox relay once it closes."""
    async with runtime.sessions() as session:
        yield session
        if session.info.pop("outbox_written", False):
            runtime.relay.notify()


class _Socket:
    def __init__(
        self, ws: WebSocket, runtime: Runtime, channel: WidgetChannel, visitor: Visitor
    ) -> None:
        self.ws = ws
        self.runtime = runtime
        self.settings = runtime.settings.widget
        self.channel = channel
        self.visitor = visitor
        self.cursor: datetime | None = None
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._lock:
            await self.ws.send_text(json.dumps(frame, separators=(",", ":")))

    async def error(self, exc: ApiError, **extra: Any) -> None:
        body = error_body(exc.code, exc.message, exc.details)
        await self.send({"type": "error", **body, **extra})

    def _unsent(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # By id only: a later change of status (the widget's own receipts) is no news to it.
        fresh = []
        for message in messages:
            if message["id"] in self._sent:
                continue
            self._sent[message["id"]] = None
            fresh.append(message)
        while len(self._sent) > _SENT_MEMORY:
            self._sent.popitem(last=False)
        return fresh

    async def _history(self, after: datetime | None) -> list[dict[str, Any]]:
        async with _session(self.runtime) as session:
            messages, cursor = await widget.history(
                session,
                self.channel,
                self.visitor.id,
                after=after,
                limit_to=self.settings.history_limit,
            )
        self.cursor = datetime.fromisoformat(cursor)
        return self._unsent(messages)

    async def ready(self, after: datetime | None) -> None:
        messages = await self._history(after)
        await self.send(
            {
                "type": "ready",
                "visitor_id": self.visitor.id,
                "config": self.channel.config.public(),
                "messages": messages,
                "cursor": self.cursor.isoformat() if self.cursor else None,
            }
        )

    async def push_loop(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Pushed replies as they come; between them, now and then, the database. A
        failure closes the socket (1011), so the widget reconnects to a healthy one."""
        try:
            await self._push(queue)
        except (WebSocketDisconnect, asyncio.CancelledError):
            raise
        except Exception:
            logger.exception("web chat push loop failed for visitor %s", self.visitor.id)
            with contextlib.suppress(Exception):
                await self.ws.close(code=1011)

    async def _push(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            try:
                pushed = await asyncio.wait_for(queue.get(), timeout=self.settings.catch_up_seconds)
            except TimeoutError:
                await self._catch_up()
                continue
            message = pushed.get("message")
            if isinstance(message, dict) and self._unsent([message]):
                await self.send({"type": "message", "message": message})

    async def _catch_up(self) -> None:
        try:
            missed = await self._history(self.cursor)
        except Exception:
            # The database is briefly unreachable: the next catch-up tries again.
            logger.exception("web chat catch-up failed for visitor %s", self.visitor.id)
            return
        for message in missed:
            await self.send({"type": "message", "message": message})

    async def read_loop(self) -> None:
        while True:
            raw = await _receive_text(self.ws)
            if len(raw) > MAX_FRAME_CHARS:
                await self.error(BadRequest("frame too large", code="frame_too_large"))
                await self.ws.close(code=1009)
                return
            try:
                frame = json.loads(raw)
            except ValueError:
                await self.error(BadRequest("frames are JSON objects", code="malformed_json"))
                continue
            if not isinstance(frame, dict):
                await self.error(BadRequest("frames are JSON objects", code="malformed_json"))
                continue
            await self._dispatch(frame)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.pop("type", None)
        try:
            if kind == "message":
                await self._message(_parse(VisitorMessageIn, frame))
            elif kind == "receipt":
                await self._receipt(_parse(ReceiptIn, frame))
            elif kind == "ping":
                await self.send({"type": "pong"})
            else:
                raise BadRequest(
                    "frame type must be message, receipt or ping",
                    code="unknown_frame",
                    details={"type": kind},
                )
        except ApiError as exc:
            client_id = frame.get("client_id")
            await self.error(exc, client_id=client_id if isinstance(client_id, str) else None)

    async def _message(self, data: VisitorMessageIn) -> None:
        async with _session(self.runtime) as session:
            posted = await widget.post_message(
                session,
                widget.recorder(session, self.channel.id, None),
                self.runtime.counter,
                self.settings,
                self.channel,
                self.visitor,
                data,
            )
        self._unsent([posted.message])
        await self.send(
            {
                "type": "message",
                "client_id": str(data.client_id),
                "created": posted.created,
                "message": posted.message,
            }
        )

    async def _receipt(self, data: ReceiptIn) -> None:
        async with _session(self.runtime) as session:
            updated = await widget.mark(session, self.channel, self.visitor.id, data)
        await self.send({"type": "receipt", "status": data.status, "updated": updated})


M = TypeVar("M", bound=BaseModel)


async def _receive_text(ws: WebSocket) -> str:
    """The next frame as text; a binary frame is decoded as UTF-8 (so a client sending
    JSON as bytes still works, and anything else gets `malformed_json`)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    if message.get("text") is not None:
        return str(message["text"])
    return bytes(message.get("bytes") or b"").decode("utf-8", errors="replace")


def _parse(model: type[M], frame: dict[str, Any]) -> M:
    try:
        return model.model_validate(frame)
    except ValidationError as exc:
        details = [
            {"loc": [str(p) for p in e["loc"]], "type": e["type"], "message": e["msg"]}
            for e in exc.errors()
        ]
        raise BadRequest(
            "the frame does not match its schema", code="validation_error", details=details
        ) from None


async def _authenticate(
    ws: WebSocket, channel: WidgetChannel, wait_s: float
) -> tuple[Visitor, datetime | None]:
    try:
        raw = await asyncio.wait_for(_receive_text(ws), timeout=wait_s)
    except TimeoutError:
        raise Unauthorized("send {type: auth, token} first", code="auth_timeout") from None
    try:
        frame = json.loads(raw)
    except ValueError:
        frame = None
    if not isinstance(frame, dict) or frame.get("type") != "auth":
        raise Unauthorized("the first frame is {type: auth, token}", code="missing_visitor_token")
    token = frame.get("token")
    visitor = widget.visitor_of(channel, token if isinstance(token, str) else None)
    after = frame.get("after")
    try:
        since = datetime.fromisoformat(after) if isinstance(after, str) and after else None
    except ValueError:
        since = None
    if since is not None and since.tzinfo is None:
        since = None
    return visitor, since


async def serve(ws: WebSocket, runtime: Runtime, channel_id: uuid.UUID) -> None:
    """Run one widget socket to its end."""
    await ws.accept()
    try:
        async with _session(runtime) as session:
            channel = await widget.web_channel(session, channel_id)
        widget.check_origin(channel, ws.headers.get("origin"), ws.headers.get("host"))
        visitor, after = await _authenticate(
            ws, channel, runtime.settings.widget.auth_timeout_seconds
        )
    except ApiError as exc:
        await _refuse(ws, exc)
        return
    except WebSocketDisconnect:
        return
    socket = _Socket(ws, runtime, channel, visitor)
    try:
        async with runtime.push.listen(push_key(visitor.id)) as queue:
            await socket.ready(after)
            pusher = asyncio.create_task(socket.push_loop(queue), name="widget-push")
            try:
                await socket.read_loop()
            finally:
                pusher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pusher
    except WebSocketDisconnect:
        return
    except RuntimeError:
        # Sending on a socket the client closed meanwhile.
        if ws.client_state is not WebSocketState.DISCONNECTED:
            raise


async def _refuse(ws: WebSocket, exc: ApiError) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await ws.send_text(
            json.dumps({"type": "error", **error_body(exc.code, exc.message, exc.details)})
        )
        await ws.close(code=_close_code(exc), reason=exc.code)
