"""A local stand-in for Meta's Graph API (WhatsApp Cloud API and Instagram's Send API),
built from its documented requests and answers: media lookup and download, message send,
and a CDN serving Instagram attachments without a token. It records every call and can
be told to answer the next calls with errors (429, 5xx, 4xx with Graph codes)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connectors.meta.signature import sign

VERSION = "v21.0"
TOKEN = "wa-access-token"


@dataclass
class Call:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeGraph:
    calls: list[Call] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # Instagram attachment files, served at /cdn/{name} (signed URLs, no bearer token).
    cdn: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # Answers for the next calls (status, JSON body), whatever they ask.
    script: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/{VERSION}"

    def cdn_url(self, name: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/cdn/{name}?oh=signed"

    def sends(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == "POST" and c.path.endswith("/messages")]

    def start(self) -> None:
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, body: dict[str, Any]) -> None:
                self._answer(status, json.dumps(body).encode(), "application/json")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                auth = self.headers.get("Authorization")
                graph.calls.append(Call(method, self.path, auth, json.loads(raw) if raw else None))
                if method == "GET" and self.path.startswith("/cdn/"):
                    name = self.path.split("?")[0].rsplit("/", 1)[1]
                    if name in graph.cdn:
                        self._answer(200, graph.cdn[name][0], graph.cdn[name][1])
                    else:
                        self._answer(404, b"URL signature expired", "text/plain")
                elif auth != f"Bearer {TOKEN}":
                    self._json(401, {"error": {"message": "Invalid OAuth token", "code": 190}})
                elif graph.script:
                    self._json(*graph.script.popleft())
                elif (
                    method == "POST"
                    and self.path.endswith("/messages")
                    and ("recipient" in graph.calls[-1].body)
                ):
                    recipient = graph.calls[-1].body["recipient"]["id"]
                    mid = f"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlE{uuid.uuid4().hex}"
                    self._json(200, {"recipient_id": recipient, "message_id": mid})
                elif method == "POST" and self.path.endswith("/messages"):
                    to = graph.calls[-1].body["to"]
                    self._json(
                        200,
                        {
                            "messaging_product": "whatsapp",
                            "contacts": [{"input": to, "wa_id": to}],
                            "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}],
                        },
                    )
                elif method == "GET" and self.path.startswith("/download/"):
                    data, mime = graph.media[self.path.rsplit("/", 1)[1]]
                    self._answer(200, data, mime)
                elif method == "GET" and self.path.rsplit("/", 1)[1] in graph.media:
                    media_id = self.path.rsplit("/", 1)[1]
                    data, mime = graph.media[media_id]
                    port = graph.server.server_address[1] if graph.server else 0
                    self._json(
                        200,
                        {
                            "messaging_product": "whatsapp",
                            "url": f"http://127.0.0.1:{port}/download/{media_id}",
                            "mime_type": mime,
                            "sha256": "unused",
                            "file_size": len(data),
                            "id": media_id,
                        },
                    )
                else:
                    self._json(
                        400,
                        {"error": {"message": "Unsupported get request", "code": 100}},
                    )

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# Meta's webhook bodies (developers.facebook.com/docs/whatsapp/cloud-api/webhooks).


def wa_message(kind: str, content: Any, wa_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": kind,
        **({kind: content} if content is not None else {}),
        **extra,
    }


def webhook_body(
    messages: list[dict[str, Any]] | None = None,
    contacts: dict[str, str] | None = None,
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1000000001"},
    }
    if contacts:
        value["contacts"] = [
            {"profile": {"name": name}, "wa_id": wa_id} for wa_id, name in contacts.items()
        ]
    if messages:
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "2000000002", "changes": [{"value": value, "field": "messages"}]}],
    }


def status(wamid: str, state: str, recipient: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": state,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
        **extra,
    }


def signed(body: dict[str, Any] | bytes, secret: str) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {"X-Hub-Signature-256": sign(raw, secret), "Content-Type": "application/json"}


# Meta's Instagram messaging webhook bodies
# (developers.facebook.com/docs/messenger-platform/instagram/features/webhook).

IG_ACCOUNT = "17841400000000001"


def ig_event(sender: str, recipient: str = IG_ACCOUNT, **event: Any) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": recipient},
        "timestamp": int(time.time() * 1000),
        **event,
    }


def ig_message(sender: str, **message: Any) -> dict[str, Any]:
    return ig_event(sender, message={"mid": f"aWdf{uuid.uuid4().hex}", **message})


def ig_body(events: list[dict[str, Any]], account: str = IG_ACCOUNT) -> dict[str, Any]:
    return {
        "object": "instagram",
        "entry": [{"id": account, "time": int(time.time() * 1000), "messaging": events}],
    }
