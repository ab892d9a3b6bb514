"""BM25 over chunks (the `bm25s` library), with a multilingual analyzer.

Analyzer: lowercase, Snowball stemming in the text's own language where PyStemmer has one
(the KB article's language for chunks, the detected or given language for queries; other
languages are left unstemmed), accents folded after stemming (Snowball expects them), and
the stopwords of the six support languages removed. Stemming is per language rather than
English-only, because an English stemmer mangles Romance and German words and would only
help the English part of a tenant's knowledge base."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np

__all__ = ["STEMMERS", "Analyzer", "Bm25Index", "fold"]

# ISO 639-1 → PyStemmer's Snowball algorithm.
STEMMERS = {
    "ar": "arabic",
    "ca": "catalan",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "tr": "turkish",
}
_STOPWORD_LISTS = (
    "STOPWORDS_EN_PLUS",
    "STOPWORDS_SPANISH",
    "STOPWORDS_PORTUGUESE",
    "STOPWORDS_FRENCH",
    "STOPWORDS_GERMAN",
    "STOPWORDS_ITALIAN",
)
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Casefolded, with combining accents removed ("Café" → "cafe", "Straße" → "strasse")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def _stopwords() -> frozenset[str]:
    import bm25s.stopwords as lists

    words: set[str] = set()
    for name in _STOPWORD_LISTS:
        words.update(fold(w) for w in getattr(lists, name))
    return frozenset(words)


class Analyzer:
    """Text → BM25 terms. `stem` and `stopwords` can be switched off to measure them."""

    def __init__(self, *, stem: bool = True, stopwords: bool = True) -> None:
        self.stem = stem
        self.stopwords = _stopwords() if stopwords else frozenset()
        # PyStemmer objects are not thread-safe; indexes are updated in worker threads.
        self._local = threading.local()

    def terms(self, text: str, language: str | None) -> list[str]:
        words = [w for w in _WORD.findall(text.casefold()) if len(w) > 1 and not w.isdigit()]
        words = [w for w in words if fold(w) not in self.stopwords]
        stemmer = self._stemmer(language) if self.stem else None
        if stemmer is not None:
            words = stemmer.stemWords(words)
        return [fold(w) for w in words]

    def _stemmer(self, language: str | None) -> Any:
        algorithm = STEMMERS.get((language or "").lower()[:2])
        if algorithm is None:
            return None
        stemmers: dict[str, Any] = self._local.__dict__.setdefault("stemmers", {})
        if algorithm not in stemmers:
            import Stemmer

            stemmers[algorithm] = Stemmer.Stemmer(algorithm)
        return stemmers[algorithm]


class Bm25Index:
    """BM25 over keyed documents given as terms. bm25s builds a static sparse index, so a
    change marks it stale and the next search rebuilds it (milliseconds for thousands of
    chunks; the terms are kept, only the matrix is rebuilt)."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._docs: dict[int, list[str]] = {}
        self._model: Any = None
        self._keys: list[int] = []

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, key: int, terms: list[str]) -> None:
        self._docs[key] = terms
        self._model = None

    def remove(self, keys: Iterable[int]) -> None:
        for key in keys:
            self._docs.pop(key, None)
        self._model = None

    def search(self, terms: list[str], k: int) -> list[tuple[int, float]]:
        """Up to `k` (key, score) pairs with a positive score, best first."""
        if not self._docs or not terms or k <= 0:
            return []
        model = self._built()
        known = [t for t in terms if t in model.vocab_dict]
        if not known:
            return []
        scores = np.asarray(model.get_scores(known), dtype=np.float32)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._keys[i], float(scores[i])) for i in top if scores[i] > 0]

    def _built(self) -> Any:
        if self._model is None:
            import bm25s

            self._keys = list(self._docs)
            model = bm25s.BM25(k1=self.k1, b=self.b)
            model.index([self._docs[key] for key in self._keys], show_progress=False)
            self._model = model
        return self._model
