"""The local GreenMail server started by `scripts/services up` (SMTP and IMAP on
loopback; any login is accepted and a mailbox is made on first use)."""

from __future__ import annotations

import email
import imaplib
import smtplib
import uuid
from dataclasses import dataclass
from email.message import Message
from email.policy import default

from tests.conftest import require_env


@dataclass(frozen=True)
class MailServer:
    host: str
    smtp_port: int
    imap_port: int

    def mailbox(self, prefix: str = "support") -> str:
        """A fresh address, so each test reads a mailbox of its own."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}@acme-help.com"

    def deliver(self, raw: bytes, to: str, sender: str = "sender@example.com") -> None:
        with smtplib.SMTP(self.host, self.smtp_port, timeout=10) as smtp:
            smtp.sendmail(sender, [to], raw)

    def imap_config(self, address: str) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.imap_port,
            "ssl": False,
            "username": address,
            "password": "any-password",
        }

    def smtp_config(self) -> dict[str, object]:
        return {"host": self.host, "port": self.smtp_port, "ssl": False, "starttls": False}

    def read_all(self, address: str) -> list[Message]:
        """Every message in `address`'s INBOX, parsed."""
        client = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        try:
            client.login(address, "any-password")
            client.select("INBOX", readonly=True)
            _, found = client.uid("SEARCH", "ALL")
            messages = []
            for uid in (found[0] or b"").split():
                _, data = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                raw = next(d[1] for d in data if isinstance(d, tuple))
                messages.append(email.message_from_bytes(raw, policy=default))
            return messages
        finally:
            client.logout()


def mail_server() -> MailServer:
    return MailServer(
        host=require_env("RELAYDESK_TEST_MAIL_HOST"),
        smtp_port=int(require_env("RELAYDESK_TEST_SMTP_PORT")),
        imap_port=int(require_env("RELAYDESK_TEST_IMAP_PORT")),
    )
