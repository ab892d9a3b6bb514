"""ASGI middleware: body size limits, request ids, Prometheus metrics, Idempotency-Key.

Written as plain ASGI (not BaseHTTPMiddleware) because it sits on every request and the
ingest benchmark counts its cost."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from api.errors import error_body
from core.domain.idempotency import IdempotencyRecord
from core.runtime import Runtime

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# File uploads: limited by the attachment size (plus room for the multipart framing) rather
# than by the API's body limit, and passed on as they arrive instead of buffered here.
UPLOADS = frozenset({("POST", "/v1/attachments")})
MULTIPART_SLACK = 64 * 1024

REQUESTS = Counter("relaydesk_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "relaydesk_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestGuard:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.limit = runtime.settings.api.max_body_bytes
        self.upload_limit = runtime.settings.storage.max_attachment_bytes + MULTIPART_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if b"%00" in scope.get("query_string", b""):
                # No column can hold a NUL; refuse it here rather than fail in the database.
                status_holder["status"] = 400
                await _send_json(
                    send_wrapper,
                    400,
                    error_body("invalid_query", "query parameters must not contain NUL"),
                )
                return
            key = headers.get("idempotency-key")
            upload = (scope["method"], scope["path"]) in UPLOADS
            limit = self.upload_limit if upload else self.limit
            if upload and key is None and not _declared_over(headers, limit):
                await self.app(scope, _capped(receive, limit), send_wrapper)
                return
            if key is None and not _has_body(headers):
                # Nothing to measure or replay (most reads): the app reads the empty body.
                await self.app(scope, receive, send_wrapper)
                return
            body = await self._read_body(receive, headers, limit)
            if body is None:
                status_holder["status"] = 413
                await _send_json(
                    send_wrapper,
                    413,
                    error_body("payload_too_large", f"request bodies are limited to {limit} bytes"),
                )
                return
            replay = _replayer(body, receive)
            if key is not None and scope["method"] == "POST":
                await self._idempotent(scope, replay, send_wrapper, headers, key, body)
            else:
                await self.app(scope, replay, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            _count(scope["method"], template, status_holder["status"], started)

    @staticmethod
    async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes | None:
        if _declared_over(headers, limit):
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _idempotent(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        key: str,
        body: bytes,
    ) -> None:
        if not 1 <= len(key) <= 255:
            await _send_json(
                send,
                400,
                error_body("invalid_idempotency_key", "Idempotency-Key must be 1-255 characters"),
            )
            return
        credential = headers.get("x-api-key") or headers.get("authorization") or ""
        scope_hash = hashlib.sha256(credential.encode()).hexdigest()
        request_hash = hashlib.sha256(
            scope["path"].encode() + b"\0" + scope.get("query_string", b"") + b"\0" + body
        ).hexdigest()
        sessions = self.runtime.sessions
        async with sessions() as session:
            session.add(IdempotencyRecord(scope=scope_hash, key=key, request_hash=request_hash))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                stored = await session.scalar(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.scope == scope_hash, IdempotencyRecord.key == key
                    )
                )
                await self._replay_stored(send, stored, request_hash)
                return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            async with sessions() as session:
                where = (IdempotencyRecord.scope == scope_hash) & (IdempotencyRecord.key == key)
                if 200 <= captured["status"] < 300:
                    await session.execute(
                        update(IdempotencyRecord)
                        .where(where)
                        .values(
                            status_code=captured["status"], response_body=b"".join(captured["body"])
                        )
                    )
                else:
                    # Failures are not remembered: the client may fix the request and retry.
                    await session.execute(delete(IdempotencyRecord).where(where))
                await session.commit()

    @staticmethod
    async def _replay_stored(
        send: Send, stored: IdempotencyRecord | None, request_hash: str
    ) -> None:
        if stored is None or stored.status_code is None:
            await _send_json(
                send,
                409,
                error_body(
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still running",
                ),
            )
            return
        if stored.request_hash != request_hash:
            await _send_json(
                send,
                422,
                error_body(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request",
                ),
            )
            return
        payload = stored.response_body or b""
        await send(
            {
                "type": "http.response.start",
                "status": stored.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"idempotent-replayed", b"true"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _declared_over(headers: dict[str, str], limit: int) -> bool:
    declared = headers.get("content-length")
    return declared is not None and declared.isdigit() and int(declared) > limit


def _capped(receive: Receive, limit: int) -> Receive:
    """`receive`, refusing the request with 413 once its body passes `limit` bytes (the
    route's body parsing re-raises an HTTPException, and the error handlers answer it)."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise HTTPException(413, f"request bodies are limited to {limit} bytes")
        return message

    return capped


def _has_body(headers: dict[str, str]) -> bool:
    # HTTP/1.1: a request without Content-Length or Transfer-Encoding has no body.
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


# The metrics' labelled children by label values: `labels()` validates and locks on every
# call, a measurable share of a cheap request.
_request_counters: dict[tuple[str, str, int], Any] = {}
_latencies: dict[tuple[str, str], Any] = {}


def _count(method: str, template: str, status: int, started: float) -> None:
    counter = _request_counters.get((method, template, status))
    if counter is None:
        counter = _request_counters[(method, template, status)] = REQUESTS.labels(
            method, template, str(status)
        )
    latency = _latencies.get((method, template))
    if latency is None:
        latency = _latencies[(method, template)] = LATENCY.labels(method, template)
    counter.inc()
    latency.observe(time.perf_counter() - started)


def _replayer(body: bytes, receive: Receive) -> Receive:
    """Hands the buffered body to the app once, then the real channel (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
