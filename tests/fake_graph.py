"""A local stand-in for Meta's Graph API (WhatsApp Cloud API and Instagram's Send API),
built from its documented requests and answers: media lookup, download and upload
(multipart), message send, the business account's message templates (paged with
`paging.cursors` and `paging.next`), and a CDN serving Instagram attachments without a
token. It records every call and can be told to answer the next calls with errors (429,
5xx, 4xx with Graph codes, with headers such as Retry-After)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from connectors.meta.signature import sign

VERSION = "v21.0"
TOKEN = "wa-access-token"


@dataclass
class Call:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass(frozen=True)
class Upload:
    """A file posted to /{phone_number_id}/media, as the multipart body carried it."""

    media_id: str
    fields: dict[str, str]
    filename: str | None
    content_type: str
    data: bytes


def multipart(
    content_type: str, raw: bytes
) -> tuple[dict[str, str], tuple[str | None, str, bytes]]:
    """The form fields and the file (name, type, bytes) of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields: dict[str, str] = {}
    found: tuple[str | None, str, bytes] = (None, "", b"")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None or name == "file":
            found = (part.get_filename(), part.get_content_type(), payload)
        else:
            fields[str(name)] = payload.decode()
    return fields, found


# Meta's template objects (GET /{waba_id}/message_templates), the shapes its docs show.
def template(
    name: str,
    language: str = "en_US",
    body: str = "Hello {{1}}",
    *,
    status: str = "APPROVED",
    header: dict[str, Any] | None = None,
    category: str = "UTILITY",
) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    if header is not None:
        components.append({"type": "HEADER", **header})
    components.append({"type": "BODY", "text": body})
    components.append({"type": "FOOTER", "text": "Reply STOP to opt out"})
    return {
        "name": name,
        "language": language,
        "status": status,
        "category": category,
        "components": components,
        "id": str(uuid.uuid4().int)[:16],
    }


@dataclass
class FakeGraph:
    calls: list[Call] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # Instagram attachment files, served at /cdn/{name} (signed URLs, no bearer token).
    cdn: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # Answers for the next calls (status, JSON body[, headers]), whatever they ask.
    script: deque[tuple[Any, ...]] = field(default_factory=deque)
    # The business account's message templates, served a page at a time.
    templates: list[dict[str, Any]] = field(default_factory=list)
    # False: template pages carry only `paging.next` (no cursors), as some answers do.
    template_cursors: bool = True
    uploads: list[Upload] = field(default_factory=list)
    # The ids the next WhatsApp sends answer with (then random ones).
    wamids: deque[str] = field(default_factory=deque)
    # Seconds each answer takes (a slow provider keeps several sends in flight at once).
    delay_s: float = 0.0
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_wamid(self) -> str:
        with self.lock:
            return self.wamids.popleft() if self.wamids else f"wamid.{uuid.uuid4().hex}"

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/{VERSION}"

    def cdn_url(self, name: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/cdn/{name}?oh=signed"

    def sends(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == "POST" and c.path.endswith("/messages")]

    def template_pages(self) -> list[str]:
        """The paths (with queries) of the template listing calls, in order."""
        return [c.path for c in self.calls if "/message_templates" in c.path]

    def _templates_page(self, path: str) -> dict[str, Any]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        size = int(query.get("limit", "25"))
        start = int(query.get("after", "0"))
        page = self.templates[start : start + size]
        answer: dict[str, Any] = {"data": page}
        if page:
            after = start + len(page)
            answer["paging"] = {}
            if self.template_cursors:
                answer["paging"]["cursors"] = {"before": str(start), "after": str(after)}
            if after < len(self.templates):
                port = self.server.server_address[1] if self.server else 0
                base = urlsplit(path).path
                following = urlencode({**query, "after": str(after), "access_token": TOKEN})
                answer["paging"]["next"] = f"http://127.0.0.1:{port}{base}?{following}"
        return answer

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

            def _json(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self, raw: bytes) -> Any:
                kind = self.headers.get("Content-Type") or ""
                if kind.startswith("multipart/form-data"):
                    fields, (filename, mime, data) = multipart(kind, raw)
                    return {
                        "fields": fields,
                        "file": {"filename": filename, "type": mime, "data": data},
                    }
                return json.loads(raw) if raw else None

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                auth = self.headers.get("Authorization")
                with graph.lock:
                    graph.calls.append(Call(method, self.path, auth, self._body(raw)))
                    call = graph.calls[-1]
                    # Scripted answers go to authorized Graph calls, never to the CDN.
                    cdn = method == "GET" and self.path.startswith("/cdn/")
                    ours = not cdn and auth == f"Bearer {TOKEN}"
                    scripted = graph.script.popleft() if ours and graph.script else None
                if graph.delay_s:
                    time.sleep(graph.delay_s)
                route = urlsplit(self.path).path
                if method == "GET" and self.path.startswith("/cdn/"):
                    name = self.path.split("?")[0].rsplit("/", 1)[1]
                    if name in graph.cdn:
                        self._answer(200, graph.cdn[name][0], graph.cdn[name][1])
                    else:
                        self._answer(404, b"URL signature expired", "text/plain")
                elif auth != f"Bearer {TOKEN}":
                    self._json(401, {"error": {"message": "Invalid OAuth token", "code": 190}})
                elif scripted is not None:
                    self._json(*scripted)
                elif method == "GET" and route.endswith("/message_templates"):
                    self._json(200, graph._templates_page(self.path))
                elif method == "POST" and route.endswith("/media"):
                    body = call.body
                    if not isinstance(body, dict) or "fields" not in body:
                        self._json(400, {"error": {"message": "file is required", "code": 100}})
                        return
                    media_id = str(uuid.uuid4().int)[:16]
                    upload = body["file"]
                    graph.uploads.append(
                        Upload(
                            media_id,
                            body["fields"],
                            upload["filename"],
                            upload["type"],
                            upload["data"],
                        )
                    )
                    self._json(200, {"id": media_id})
                elif (
                    method == "POST"
                    and self.path.endswith("/messages")
                    and ("recipient" in call.body)
                ):
                    recipient = call.body["recipient"]["id"]
                    mid = f"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlE{uuid.uuid4().hex}"
                    self._json(200, {"recipient_id": recipient, "message_id": mid})
                elif method == "POST" and self.path.endswith("/messages"):
                    to = call.body["to"]
                    self._json(
                        200,
                        {
                            "messaging_product": "whatsapp",
                            "contacts": [{"input": to, "wa_id": to}],
                            "messages": [{"id": graph.next_wamid()}],
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
