"""Raw RFC 5322 bytes to what the inbound path needs, with the standard library's `email`
package (policy=default): sender, subject and thread ids from encoded-word headers, the
body as plain text in any charset (HTML rendered to text), attachments, and whether the
message is an automatic one (an auto-reply or a bounce) that must not open a ticket."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from connectors.email.html_text import html_to_text
from connectors.email.quotes import trim_quoted
from connectors.email.threading import message_ids

_AUTO_PRECEDENCE = frozenset({"bulk", "auto_reply", "junk", "list"})
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Reply")
_BOUNCE_SENDERS = ("mailer-daemon@", "postmaster@")


class MalformedEmail(ValueError):
    """Bytes that are not a message the channel can store (no sender address, ...)."""


@dataclass(frozen=True)
class RawAttachment:
    filename: str | None
    content_type: str
    data: bytes
    inline: bool
    content_id: str | None


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str  # without brackets; a digest of the bytes when the header is missing
    from_address: str  # lower case
    from_name: str
    subject: str
    sent_at: datetime | None
    in_reply_to: list[str]
    references: list[str]
    text: str
    html_only: bool
    # Whether a quoted earlier message was cut off the end of `text`.
    quote_trimmed: bool = False
    attachments: list[RawAttachment] = field(default_factory=list)
    # "auto_reply" or "bounce" for a message no person wrote; None for a person's mail.
    automatic: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)

    @property
    def thread_ids(self) -> list[str]:
        """The ids this message answers, nearest first (In-Reply-To, then References
        from the newest)."""
        seen: list[str] = []
        for mid in [*self.in_reply_to, *reversed(self.references)]:
            if mid not in seen and mid != self.message_id:
                seen.append(mid)
        return seen


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:
        value = msg.get_all(name, [""])[0] if hasattr(msg, "get_all") else ""
    return " ".join(str(value or "").split())


def _sender(msg: Message) -> tuple[str, str]:
    raw = _header(msg, "From") or _header(msg, "Sender")
    try:
        header = msg["From"]
        addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    except Exception:
        addresses = ()
    for address in addresses:
        if address.addr_spec and "@" in address.addr_spec:
            return address.addr_spec.lower(), address.display_name.strip()
    for name, addr in getaddresses([raw]):
        if "@" in addr:
            return addr.lower(), name.strip()
    raise MalformedEmail("the message has no From address")


def _addresses(msg: Message, name: str) -> list[str]:
    return [addr.lower() for _, addr in getaddresses([_header(msg, name)]) if "@" in addr]


def _date(msg: Message) -> datetime | None:
    raw = _header(msg, "Date")
    if not raw:
        return None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _text_of(part: Message) -> str:
    """A text part's content in its declared charset; an unknown or wrong charset decodes
    leniently rather than losing the message."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8", "cp1252"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def automatic_kind(msg: Message) -> str | None:
    """'bounce' for a delivery report, 'auto_reply' for a vacation reply or other mail a
    program sent (RFC 3834 Auto-Submitted, Precedence, the X-Autoreply family)."""
    if msg.get_content_type() == "multipart/report":
        return "bounce"
    if _sender_is_daemon(msg):
        return "bounce"
    submitted = _header(msg, "Auto-Submitted").split(";", 1)[0].strip().lower()
    if submitted and submitted != "no":
        return "auto_reply"
    if _header(msg, "Precedence").lower() in _AUTO_PRECEDENCE:
        return "auto_reply"
    if any(_header(msg, name) for name in _AUTO_HEADERS):
        return "auto_reply"
    return None


def _sender_is_daemon(msg: Message) -> bool:
    raw = _header(msg, "From").lower()
    return any(daemon in raw for daemon in _BOUNCE_SENDERS)


def _leaves(msg: Message) -> list[Message]:
    """The message's leaf parts in order; an attached message (message/rfc822) is one
    leaf, not opened."""
    if msg.get_content_maintype() == "multipart":
        found: list[Message] = []
        payload = msg.get_payload()
        for part in payload if isinstance(payload, list) else []:
            if isinstance(part, Message):
                found.extend(_leaves(part))
        return found
    return [msg]


def _is_body(part: Message) -> bool:
    return part.get_content_type() in ("text/plain", "text/html") and (
        part.get_content_disposition() != "attachment"
    )


def _attachment(part: Message) -> RawAttachment:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        body = inner[0] if isinstance(inner, list) and inner else inner
        data = body.as_bytes() if isinstance(body, Message) else b""
    else:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    cid = message_ids(_header(part, "Content-ID"))
    return RawAttachment(
        filename=part.get_filename(),
        content_type=part.get_content_type(),
        data=data,
        inline=part.get_content_disposition() == "inline",
        content_id=cid[0] if cid else None,
    )


def parse_email(raw: bytes) -> ParsedEmail:
    """The message in `raw`; MalformedEmail when it has no sender to answer."""
    if not raw.strip():
        raise MalformedEmail("the message is empty")
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise MalformedEmail("no RFC 5322 headers found")
    from_address, from_name = _sender(msg)
    leaves = _leaves(msg)
    plain = [p for p in leaves if _is_body(p) and p.get_content_type() == "text/plain"]
    html = [p for p in leaves if _is_body(p) and p.get_content_type() == "text/html"]
    text = "\n\n".join(t for t in (_text_of(p).strip() for p in plain) if t)
    html_only = False
    if not text and html:
        text = "\n\n".join(t for t in (html_to_text(_text_of(p)) for p in html) if t)
        html_only = True
    text, trimmed = trim_quoted(text.replace("\r\n", "\n"))
    ids = message_ids(_header(msg, "Message-ID"))
    message_id = ids[0] if ids else f"sha256-{hashlib.sha256(raw).hexdigest()}@relaydesk"
    return ParsedEmail(
        message_id=message_id[:255],
        from_address=from_address,
        from_name=from_name,
        subject=_header(msg, "Subject"),
        sent_at=_date(msg),
        in_reply_to=message_ids(_header(msg, "In-Reply-To")),
        references=message_ids(_header(msg, "References")),
        text=text,
        html_only=html_only,
        quote_trimmed=trimmed,
        attachments=[_attachment(p) for p in leaves if not _is_body(p)],
        automatic=automatic_kind(msg),
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
    )
