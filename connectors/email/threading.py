"""What threads an email: its Message-ID, the ids it answers (In-Reply-To, References) and
its subject with the reply and forward prefixes of every common client removed."""

from __future__ import annotations

import re

_MSG_ID = re.compile(r"<([^<>\s]+)>")
# "Re:", "RE:", "Fwd:", "FW:", "AW:" (German), "WG:", "SV:", "Antw:", "RIF:", "TR:", "Réf:"...,
# with an optional counter ("Re[2]:", "Re(2):"), and bracketed list tags in front.
_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{1,40}\]\s*)?"
    r"(?:re|fwd?|aw|wg|sv|vs|antw|rif|tr|réf|ref|odp|vl)\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a]\s*",
    re.IGNORECASE,
)


def message_ids(value: str | None) -> list[str]:
    """The ids in a Message-ID, In-Reply-To or References header, without brackets, in order."""
    if not value:
        return []
    found = _MSG_ID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        # Some senders leave the brackets off a lone id.
        found = [value.strip()]
    return found


def normalized_subject(subject: str | None) -> str:
    """The subject a thread keeps through replies and forwards: prefixes off, spaces folded,
    lower case."""
    text = " ".join((subject or "").split())
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return text.strip().casefold()


def reply_subject(subject: str | None) -> str:
    """'Re: <subject>' without stacking prefixes."""
    text = " ".join((subject or "").split())
    base = text
    while True:
        stripped = _PREFIX.sub("", base, count=1)
        if stripped == base:
            break
        base = stripped
    return f"Re: {base}" if base else "Re:"
