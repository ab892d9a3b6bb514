"""WhatsApp message templates: what a synced template asks of a reply that sends it.

A template's `HEADER` (format `TEXT`) and `BODY` carry placeholders, positional (`{{1}}`)
or named (`{{first_name}}`); a media header (`IMAGE`, `VIDEO`, `DOCUMENT`, `LOCATION`)
takes one parameter of its kind. A reply fills them with `parameters` (the body's, in
order) or with Meta's `components` as they are. Buttons with a variable part are left
to Meta to check."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

APPROVED = "APPROVED"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_HEADERS = frozenset({"IMAGE", "VIDEO", "DOCUMENT", "LOCATION"})


@dataclass(frozen=True)
class SyncedTemplate:
    """One template as the business account lists it."""

    name: str
    language: str
    status: str
    category: str
    components: list[dict[str, Any]]
    provider_id: str | None

    @classmethod
    def of(cls, payload: dict[str, Any]) -> SyncedTemplate | None:
        """From Meta's template object; None when it lacks a name or language."""
        name, language = payload.get("name"), payload.get("language")
        if not isinstance(name, str) or not isinstance(language, str) or not name or not language:
            return None
        components = payload.get("components")
        return cls(
            name=name[:512],
            language=language[:16],
            status=str(payload.get("status") or "UNKNOWN").upper()[:32],
            category=str(payload.get("category") or "")[:32],
            components=[c for c in components if isinstance(c, dict)]
            if isinstance(components, list)
            else [],
            provider_id=str(payload["id"])[:64] if payload.get("id") else None,
        )


@dataclass(frozen=True)
class Slots:
    """Parameters a template's header and body take (or a reply gives)."""

    header: int = 0
    body: int = 0


def _placeholders(text: Any) -> int:
    return len(set(PLACEHOLDER.findall(text))) if isinstance(text, str) else 0


def _component(components: Iterable[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in components if str(c.get("type", "")).upper() == kind), None)


def slots(components: list[dict[str, Any]]) -> Slots:
    """What a template's components ask for."""
    header = _component(components, "HEADER")
    header_slots = 0
    if header is not None:
        kind = str(header.get("format") or "TEXT").upper()
        header_slots = 1 if kind in MEDIA_HEADERS else _placeholders(header.get("text"))
    body = _component(components, "BODY")
    return Slots(header_slots, _placeholders(body.get("text")) if body else 0)


def given(template: dict[str, Any]) -> Slots:
    """What a reply's `template` fills: `components` counted per part, else `parameters`
    for the body."""
    components = template.get("components")
    if isinstance(components, list):
        found = {"header": 0, "body": 0}
        for component in components:
            kind = str(component.get("type", "")).lower() if isinstance(component, dict) else ""
            if kind in found:
                parameters = component.get("parameters")
                found[kind] += len(parameters) if isinstance(parameters, list) else 0
        return Slots(found["header"], found["body"])
    return Slots(0, len(template.get("parameters") or []))


def _plural(n: int) -> str:
    return f"{n} parameter" + ("" if n == 1 else "s")


def mismatch(synced: SyncedTemplate, template: dict[str, Any]) -> tuple[str, str] | None:
    """An error code and why the reply's `template` cannot be sent as `synced` (None: it
    can)."""
    if synced.status != APPROVED:
        return "template_not_approved", (
            f"template {synced.name!r} ({synced.language}) is {synced.status}: only "
            "APPROVED templates can be sent"
        )
    wanted, sent = slots(synced.components), given(template)
    for part in ("header", "body"):
        need, have = getattr(wanted, part), getattr(sent, part)
        if need != have:
            how = "" if part == "body" or template.get("components") else " (give `components`)"
            return "template_parameters", (
                f"template {synced.name!r} ({synced.language}): its {part} takes "
                f"{_plural(need)}, the reply gives {have}{how}"
            )
    return None
