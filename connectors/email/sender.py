"""Agent replies sent over SMTP (the standard library's smtplib, in a worker thread),
threaded the way mail clients expect: our own Message-ID (stored as the reply's provider
id, so the customer's answer to it finds the conversation), In-Reply-To the customer's
last message, References that message's References plus its id, Subject "Re: ...".

Email has no messaging window. A stored attachment (`{"storage_key", "mime_type", "filename"}`)
is attached to the mail; one given by `url` is sent as a link in the text. Templates and
interactive bodies have no email form.

One SMTP transaction per attempt: the delivery worker retries transient failures (4xx
answers, dropped or refused connections). The Message-ID is made from the reply's own id,
the same on every attempt, so a mail sent twice after a lost answer is one message to
the customer's client."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from pydantic import ValidationError

from connectors.email.config import EmailConfig, SmtpConfig
from connectors.email.threading import reply_subject
from connectors.sender import OutboundReply, SendOutcome, blob_key, blob_type, is_blob
from core.db.types import utcnow
from core.domain.enums import IdentityKind
from core.settings import ChannelSettings

MAX_REFERENCES = 20


def build_reply(config: EmailConfig, recipient: str, reply: OutboundReply) -> EmailMessage:
    """The RFC 5322 message for one reply."""
    thread = reply.thread or {}
    message = EmailMessage()
    address = str(config.address)
    message["From"] = formataddr((config.display_name, address)) if config.display_name else address
    message["To"] = recipient
    message["Subject"] = reply_subject(thread.get("subject"))
    message["Date"] = format_datetime(utcnow())
    domain = address.rsplit("@", 1)[1]
    message["Message-ID"] = (
        f"<{reply.reference}@{domain}>" if reply.reference else make_msgid(domain=domain)
    )
    parent = thread.get("in_reply_to")
    if parent:
        references = [*thread.get("references", []), parent][-MAX_REFERENCES:]
        message["In-Reply-To"] = f"<{parent}>"
        message["References"] = " ".join(f"<{r}>" for r in dict.fromkeys(references))
    # Replies are written by people: tell vacation responders not to answer them.
    message["Auto-Submitted"] = "no"
    links = [
        f"{a.get('filename') or a.get('type', 'file')}: {a['url']}"
        for a in reply.attachments
        if not is_blob(a)
    ]
    body = "\n\n".join(part for part in (reply.text, "\n".join(links)) if part)
    message.set_content(body or " ")
    for attachment in filter(is_blob, reply.attachments):
        key = blob_key(attachment)
        maintype, _, subtype = blob_type(attachment).partition("/")
        if not maintype or not subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(
            reply.blobs[key],
            maintype=maintype,
            subtype=subtype.split(";", 1)[0].strip(),
            filename=str(attachment.get("filename") or key[:16]),
        )
    return message


def _transmit(smtp: SmtpConfig, message: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.ssl:
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
    with client:
        if smtp.starttls and not smtp.ssl:
            client.starttls(context=context)
        if smtp.username and smtp.password:
            client.login(smtp.username, smtp.password)
        client.send_message(message)


def _transient(exc: Exception) -> bool:
    """Worth another try: a 4xx answer, a dropped or refused connection, a timeout."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    return isinstance(exc, (smtplib.SMTPServerDisconnected, OSError))


def _error(exc: Exception) -> dict[str, Any]:
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = next(iter(exc.recipients.values()))[0]
    return {"status": None, "code": code, "message": str(exc)[:500] or type(exc).__name__}


class EmailSender:
    identity_kind = IdentityKind.EMAIL
    in_request = False

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings

    def refusal(
        self, reply: OutboundReply, last_inbound_at: datetime | None
    ) -> tuple[str, str] | None:
        if reply.template is not None or reply.interactive is not None:
            return ("unsupported_reply", "email replies are text (no template or interactive)")
        if any(not a.get("url") and not is_blob(a) for a in reply.attachments):
            return (
                "unsupported_attachment",
                "email attachments need the `key` of a stored attachment or a `url`",
            )
        return None

    async def send(
        self, config: dict[str, Any], recipient: str, reply: OutboundReply
    ) -> SendOutcome:
        try:
            email_config = EmailConfig.model_validate(config)
        except ValidationError as exc:
            return SendOutcome(error={"status": None, "code": "config", "message": str(exc)})
        if email_config.smtp is None:
            return SendOutcome(
                error={"status": None, "code": "no_smtp", "message": "the channel has no SMTP"}
            )
        message = build_reply(email_config, recipient, reply)
        try:
            await asyncio.to_thread(
                _transmit, email_config.smtp, message, self.settings.http_timeout_s
            )
        except (smtplib.SMTPException, OSError) as exc:
            return SendOutcome(error=_error(exc), retryable=_transient(exc))
        return SendOutcome(provider_message_id=str(message["Message-ID"]).strip("<>"))
