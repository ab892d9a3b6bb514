"""A lean HTTP/1.1 keep-alive client for the load phases.

The load generator shares the machine's two cores with the API server and PostgreSQL, so
every millisecond it spends is taken from what is being measured. httpx costs ~0.9 ms of
CPU per request here, a third of what the API spends on a list. A closed-loop client needs
much less: one connection, one request at a time, a Content-Length body. This one writes
the request bytes itself and parses the response with httptools (the parser uvicorn
uses); it costs ~0.1 ms per request. Same calls as the part of `httpx.AsyncClient` the
phases use: `get`, `post`, `aclose`, and responses with `status_code`, `text`, `json()`."""

from __future__ import annotations

import asyncio
import json as jsonlib
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools


class LeanResponse:
    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class _Connection(asyncio.Protocol):
    """One TCP connection; the httptools parser calls the `on_*` methods."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[LeanResponse] | None = None
        self.chunks: list[bytes] = []
        self.received = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"unparseable response: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        response = LeanResponse(self.parser.get_status_code(), b"".join(self.chunks))
        self.chunks = []
        if not self.parser.should_keep_alive() and self.transport is not None:
            self.transport.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection closed by the server ({exc})"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


class LeanClient:
    """A keep-alive connection to `base_url` that reconnects when the server closed it
    (uvicorn drops idle connections after 5 s, e.g. between phases)."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._host_line = f"Host: {parts.netloc}\r\n"
        self._conn: _Connection | None = None

    async def _connection(self) -> _Connection:
        if self._conn is None or self._conn.closed:
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_connection(_Connection, self.host, self.port)
            self._conn = protocol
        return self._conn

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> LeanResponse:
        if params:
            path = f"{path}{'&' if '?' in path else '?'}{urlencode(params)}"
        head = [f"{method} {path} HTTP/1.1\r\n", self._host_line]
        body = content or b""
        if json is not None:
            body = jsonlib.dumps(json).encode()
            head.append("Content-Type: application/json\r\n")
        head.append(f"Content-Length: {len(body)}\r\n")
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n")
        head.append("\r\n")
        payload = "".join(head).encode("latin-1") + body
        for attempt in (1, 2):
            conn = await self._connection()
            reused = conn.received
            conn.waiter = asyncio.get_running_loop().create_future()
            conn.received = False
            assert conn.transport is not None
            conn.transport.write(payload)
            try:
                return await asyncio.wait_for(conn.waiter, self.timeout)
            except ConnectionError:
                # A kept-alive connection the server closed as the request left: send it
                # again on a new one, as httpx does. Anything else is the server's failure.
                if attempt == 2 or not reused or conn.received:
                    raise
            finally:
                conn.waiter = None
        raise AssertionError("unreachable")

    async def get(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> LeanResponse:
        return await self.request("GET", path, params=params, headers=headers)

    async def post(
        self,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> LeanResponse:
        """`content`: raw bytes sent as they are (a signed webhook body), with the
        Content-Type given in `headers`."""
        return await self.request("POST", path, json=json, content=content, headers=headers)

    async def aclose(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None
