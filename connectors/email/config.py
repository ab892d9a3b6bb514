"""An email channel's config: the mailbox, how to read it (IMAP), how to answer (SMTP)
and the token that authenticates pushed messages."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Port = Annotated[int, Field(ge=1, le=65535)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class ImapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: Host
    port: Port = 993
    # Implicit TLS (port 993); False: a plain connection upgraded with STARTTLS when
    # `starttls`, else plain (a local test server).
    ssl: bool = True
    starttls: bool = False
    username: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    password: Secret
    folder: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "INBOX"


class SmtpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: Host
    port: Port = 587
    ssl: bool = False
    starttls: bool = True
    username: Annotated[str, StringConstraints(max_length=320)] | None = None
    password: Secret | None = None


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The support address: the From of our replies and the mailbox customers write to.
    address: EmailStr
    display_name: Annotated[str, StringConstraints(max_length=200)] = ""
    imap: ImapConfig | None = None
    smtp: SmtpConfig | None = None
    # Bearer token of `POST /webhooks/email/{channel_id}` (pushed raw messages); unset:
    # pushing is refused.
    webhook_token: Annotated[str, StringConstraints(min_length=16, max_length=1024)] | None = None
    # A reply without thread headers joins an earlier conversation of the same sender
    # with the same subject up to this many days old.
    subject_window_days: Annotated[int, Field(ge=0, le=365)] = 30
