"""The web chat widget: its script, a demo page, visitor sessions, the WebSocket, and the
REST endpoints the widget falls back to when a WebSocket cannot connect.

Authenticated by the visitor token (`Authorization: Bearer <token>`, or the socket's
first frame), never by an API key; a channel's `allowed_origins` limits which sites'
pages may call them (403 `origin_not_allowed`)."""

from __future__ import annotations

import functools
import html
import uuid
from importlib import resources
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, WebSocket, status
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime

from api.deps import RuntimeDep, SessionDep
from api.services import widget, widget_socket
from api.services.widget import WidgetChannel
from connectors.web.payload import ReceiptIn, SessionIn, VisitorMessageIn
from connectors.web.token import Visitor

router = APIRouter(tags=["web chat widget"])


@functools.cache
def _static(name: str) -> str:
    return resources.files("connectors.web").joinpath("static", name).read_text("utf-8")


async def _channel(channel_id: uuid.UUID, request: Request, session: SessionDep) -> WidgetChannel:
    channel = await widget.web_channel(session, channel_id)
    widget.check_origin(channel, request.headers.get("origin"), request.headers.get("host"))
    return channel


ChannelDep = Annotated[WidgetChannel, Depends(_channel)]


async def _visitor(
    channel: ChannelDep, authorization: Annotated[str | None, Header()] = None
) -> Visitor:
    return widget.visitor_of(channel, widget.bearer(authorization))


VisitorDep = Annotated[Visitor, Depends(_visitor)]


@router.get("/widget.js", response_class=Response)
async def widget_script() -> Response:
    """The widget: embed with `<script src=".../widget.js" data-channel="<id>" async>`."""
    return Response(
        _static("widget.js"),
        media_type="application/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/widget/{channel_id}/demo", response_class=HTMLResponse)
async def demo_page(channel: ChannelDep, request: Request) -> HTMLResponse:
    """A page that embeds the channel's widget with its one tag."""
    script = str(request.url_for("widget_script"))
    tag = f'<script src="{html.escape(script)}" data-channel="{channel.id}" async></script>'
    page = Template(_static("demo.html")).substitute(
        channel_id=channel.id, snippet=html.escape(tag), tag=tag
    )
    return HTMLResponse(page)


@router.post("/widget/{channel_id}/session")
async def start_session(
    body: SessionIn, channel: ChannelDep, request: Request, runtime: RuntimeDep
) -> dict[str, Any]:
    """A visitor token: for a new visitor, or the stored one renewed (401 when it is
    expired or not this channel's: the widget then starts over)."""
    if body.token is None:
        address = request.client.host if request.client else "unknown"
        per_minute = runtime.settings.widget.sessions_per_minute
        key = f"session:{channel.id}:{address}"
        await widget.limit(runtime.counter, key, per_minute, "new visitors")
    return widget.start_session(channel, body)


@router.get("/widget/{channel_id}/messages")
async def list_messages(
    channel: ChannelDep,
    visitor: VisitorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    after: Annotated[AwareDatetime | None, Query(description="the last answer's cursor")] = None,
) -> dict[str, Any]:
    """The visitor's history (latest first page), or what changed after `cursor`."""
    limit = runtime.settings.widget.history_limit
    messages, cursor = await widget.history(
        session, channel, visitor.id, after=after, limit_to=limit
    )
    return {"messages": messages, "cursor": cursor}


@router.post("/widget/{channel_id}/messages", status_code=status.HTTP_201_CREATED)
async def post_message(
    body: VisitorMessageIn,
    channel: ChannelDep,
    visitor: VisitorDep,
    request: Request,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """A visitor message: 201 when stored, 200 when this `client_id` was stored before."""
    events = widget.recorder(session, channel.id, request.headers.get("x-request-id"))
    posted = await widget.post_message(
        session, events, runtime.counter, runtime.settings.widget, channel, visitor, body
    )
    if not posted.created:
        response.status_code = status.HTTP_200_OK
    return {"client_id": str(body.client_id), "created": posted.created, "message": posted.message}


@router.post("/widget/{channel_id}/receipts")
async def post_receipts(
    body: ReceiptIn, channel: ChannelDep, visitor: VisitorDep, session: SessionDep
) -> dict[str, int]:
    """Agent replies the widget showed (`delivered`) or the visitor saw (`read`)."""
    return {"updated": await widget.mark(session, channel, visitor.id, body)}


@router.websocket("/widget/{channel_id}/ws")
async def widget_socket_route(websocket: WebSocket, channel_id: uuid.UUID) -> None:
    """Live chat: `{type: auth, token}` first, then messages both ways."""
    await widget_socket.serve(websocket, websocket.app.state.runtime, channel_id)
