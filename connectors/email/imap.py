"""Reading a mailbox folder over IMAP (the standard library's imaplib, blocking: callers
run it in a worker thread). Only messages above the last UID stored are fetched, with
BODY.PEEK so the mailbox's \\Seen flags are left to the people who read it too."""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from dataclasses import dataclass
from typing import Any

from connectors.email.config import ImapConfig

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCHED_UID = re.compile(rb"UID (\d+)")


class ImapFailure(RuntimeError):
    """The server refused a command or the connection failed; nothing was consumed."""


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes


@dataclass(frozen=True)
class FolderBatch:
    uidvalidity: int
    messages: list[FetchedMail]  # in UID order
    more: bool  # messages past `limit` wait for the next poll


def _connect(config: ImapConfig, timeout: float) -> imaplib.IMAP4:
    if config.ssl:
        return imaplib.IMAP4_SSL(
            config.host, config.port, ssl_context=ssl.create_default_context(), timeout=timeout
        )
    client = imaplib.IMAP4(config.host, config.port, timeout=timeout)
    if config.starttls:
        client.starttls(ssl.create_default_context())
    return client


def _ok(result: tuple[str, Any], what: str) -> list[Any]:
    status, data = result
    if status != "OK":
        raise ImapFailure(f"IMAP {what} failed: {data!r}")
    return list(data)


def fetch_new(
    config: ImapConfig,
    uidvalidity: int | None,
    last_uid: int,
    *,
    limit: int = 100,
    timeout: float = 30.0,
) -> FolderBatch:
    """The folder's messages after `last_uid` (all of them when the folder's UIDVALIDITY is
    not `uidvalidity`: the server renumbered it), at most `limit`."""
    try:
        client = _connect(config, timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapFailure(f"cannot connect to {config.host}:{config.port}: {exc}") from exc
    try:
        _ok(client.login(config.username, config.password), "LOGIN")
        _ok(client.select(_quoted(config.folder), readonly=True), "SELECT")
        current = _folder_uidvalidity(client, config.folder)
        after = last_uid if uidvalidity == current else 0
        found = _ok(client.uid("SEARCH", f"UID {after + 1}:*"), "UID SEARCH")
        # "n:*" also matches the highest UID when it is below n, so filter.
        uids = sorted(int(u) for u in (found[0] or b"").split() if int(u) > after)
        messages = [FetchedMail(uid, _fetch(client, uid)) for uid in uids[:limit]]
        return FolderBatch(current, messages, len(uids) > limit)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapFailure(f"IMAP session with {config.host}:{config.port} failed: {exc}") from exc
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _folder_uidvalidity(client: imaplib.IMAP4, folder: str) -> int:
    _, data = client.response("UIDVALIDITY")
    if data and data[0]:
        return int(data[0])
    status = _ok(client.status(_quoted(folder), "(UIDVALIDITY)"), "STATUS")
    match = _UIDVALIDITY.search(status[0] if isinstance(status[0], bytes) else b"")
    if match is None:
        raise ImapFailure("the server gave no UIDVALIDITY")
    return int(match.group(1))


def _fetch(client: imaplib.IMAP4, uid: int) -> bytes:
    data = _ok(client.uid("FETCH", str(uid), "(UID BODY.PEEK[])"), "UID FETCH")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    raise ImapFailure(f"UID {uid} came back without a body")
