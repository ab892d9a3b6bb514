"""The new part of a reply: the quoted earlier message that mail clients append (Gmail's
"On ... wrote:", Outlook's rule and "From:/Von:" block, "-----Original Message-----",
a run of "> " lines at the end) cut off, so the text says what the customer wrote now."""

from __future__ import annotations

import re

# A line that opens the quoted message, in the languages clients most often write.
_OPENERS = re.compile(
    r"^(?:"
    r"On .{4,200} wrote:|Am .{4,200} schrieb .{1,200}:|Le .{4,200} a écrit\s?:|"
    r"El .{4,200} escribió:|Il .{4,200} ha scritto:|Op .{4,200} schreef .{1,200}:|"
    r"-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|"
    r"Mensaje original|Messaggio originale)\s*-{2,}|"
    r"_{20,}"
    r")\s*$",
    re.IGNORECASE,
)


def trim_quoted(text: str) -> tuple[str, bool]:
    """The text before the quoted message, and whether anything was cut. Text that would
    be empty without the quote (a forward, a reply written inline) is kept whole."""
    lines = text.split("\n")
    cut = None
    for index, line in enumerate(lines):
        if _OPENERS.match(line.strip()):
            cut = index
            break
    if cut is None:
        # Only a trailing block of "> " lines, with nothing written after it.
        end = len(lines)
        while end and not lines[end - 1].strip():
            end -= 1
        start = end
        while start and lines[start - 1].startswith(">"):
            start -= 1
        cut = start if start < end else None
    if cut is None:
        return text, False
    kept = "\n".join(lines[:cut]).rstrip()
    return (kept, True) if kept else (text, False)
