"""The analyzer on the real e5 int8 encoder and its heads: six languages, the prepare/finish
split with one encoder pass, abstention, tenant taxonomies, odd input, and the hashing
bundle that has no heads. No database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import typer

from core.settings import AiSettings
from models.analyzer import Analyzer
from models.bundle import ModelsNotBuiltError, heads_dir_for, load_bundle
from models.cli import heads_encoder
from models.encoder import Encoder, Kind
from models.local import LocalModels
from models.service import (
    AnalyzeRequest,
    CustomIntentSpec,
    ModelUnavailableError,
    TenantTaxonomy,
)

GIFT_CARD = CustomIntentSpec(
    name="gift_card",
    description="Questions about gift cards: balance, redeeming a code, a rejected card",
    examples=(
        "How do I check the balance on my gift card?",
        "My gift card code is not accepted at checkout",
        "Can I pay with two gift cards on one order?",
        "¿Cómo canjeo mi tarjeta regalo en la web?",
    ),
)

# text, language, intent, sentiment
MULTILINGUAL = [
    ("Where is my order #48213? It was due yesterday.", "en", "order_status", "neutral"),
    ("¿Dónde está mi pedido? Lo pedí hace dos semanas", "es", "order_status", "neutral"),
    ("Quero cancelar minha assinatura agora", "pt", "cancel", "neutral"),
    ("Bonjour, je n'arrive pas à me connecter à mon compte", "fr", "account_access", "neutral"),
    # says it is annoyed: the bare "charged twice, please refund" is a coin flip (0.49 / 0.51)
    (
        "Ich wurde doppelt belastet, das ist ärgerlich. Bitte erstatten Sie 49,90 €",
        "de",
        "billing",
        "negative",
    ),
    ("Grazie mille, servizio fantastico!", "it", "praise", "positive"),
]

# The first test to use the shared analyzer may build the encoder and train the heads on a
# cold models cache (embedding the VADER texts once: minutes on two shared cores).
pytestmark = pytest.mark.timeout(900)


@dataclass
class CountingEncoder:
    """The real encoder, counting `encode` calls and texts."""

    inner: Encoder
    calls: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name, self.version = self.inner.name, self.inner.version
        self.dim, self.max_tokens = self.inner.dim, self.inner.max_tokens

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.calls.append(len(texts))
        return self.inner.encode(texts, kind)


@pytest.fixture
def counting(analyzer: Analyzer) -> Iterator[CountingEncoder]:
    real = analyzer.encoder
    counter = CountingEncoder(real)
    analyzer.encoder = counter
    try:
        yield counter
    finally:
        analyzer.encoder = real


def test_six_languages_in_one_encoder_pass(analyzer: Analyzer, counting: CountingEncoder) -> None:
    results = analyzer.analyze([AnalyzeRequest(text) for text, *_ in MULTILINGUAL])
    assert counting.calls == [len(MULTILINGUAL)]
    for (text, lang, intent, sentiment), result in zip(MULTILINGUAL, results, strict=True):
        assert result.language.code == lang, text
        assert result.intent.label == intent, (text, result.intent)
        assert result.sentiment.label == sentiment, (text, result.sentiment)
        # a label, or an abstention that says so ("where is my order, due yesterday" sits
        # between normal and high: 0.47 / 0.41)
        assert result.urgency.label is not None or result.urgency.reason == "low_confidence"
        assert sum(result.urgency.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        assert set(result.intent.probabilities) == set(analyzer.bundle.intent.labels)
        assert sum(result.sentiment.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        assert result.encoder_version == analyzer.encoder_version
        assert result.intent.model_version == analyzer.versions()["intent"]
        assert not result.truncated
        assert not result.notes
    order, billing = results[0], results[4]
    assert [(e.type, e.normalized) for e in order.entities][:1] == [("order_id", "48213")]
    assert ("money", "EUR 49.90") in [(e.type, e.normalized) for e in billing.entities]


def test_prepare_and_finish_split_matches_analyze(analyzer: Analyzer) -> None:
    requests = [AnalyzeRequest("Mi paquete llegó roto"), AnalyzeRequest(""), AnalyzeRequest("hi")]
    prepared = analyzer.prepare(requests)
    texts = analyzer.texts_to_encode(prepared)
    assert texts == ["Mi paquete llegó roto", "hi"]  # nothing to encode for the empty one
    vectors = analyzer.encoder.encode(texts, "query")
    split = analyzer.finish(requests, prepared, vectors)
    whole = analyzer.analyze(requests)
    for a, b in zip(split, whole, strict=True):
        assert (a.intent.label, a.sentiment.label, a.urgency.label) == (
            b.intent.label,
            b.sentiment.label,
            b.urgency.label,
        )
        for label, p in a.intent.probabilities.items():
            assert p == pytest.approx(b.intent.probabilities[label], abs=0.02)
    assert split[0].intent.label == "delivery_issue"
    with pytest.raises(ValueError, match="expected 2 embeddings"):
        analyzer.finish(requests, prepared, vectors[:1])


def test_odd_input_gets_a_clear_analysis(analyzer: Analyzer) -> None:
    cases = {
        "empty": "",
        "blank": " \n\t ",
        "binary": "\x00\x01\x02\x03\ufffd\ufffd\x04\x05\x06",
        "emoji": "👍👍",
        "gibberish": "asdf qwer zxcv",
        "nul inside": "Where is\x00 my order 5512?",
    }
    results = dict(
        zip(cases, analyzer.analyze([AnalyzeRequest(t) for t in cases.values()]), strict=True)
    )
    for name in ("empty", "blank"):
        r = results[name]
        assert r.intent.label is None
        assert r.intent.reason == "empty"
        assert r.language.code is None
        assert r.language.reason == "empty"
        assert r.notes == ("The text is empty: nothing to analyze.",)
    binary = results["binary"]
    assert (binary.intent.reason, binary.sentiment.reason, binary.urgency.reason) == ("binary",) * 3
    assert "binary" in binary.notes[0]
    assert results["emoji"].language.code is None
    assert results["emoji"].language.reason == "no_letters"
    assert results["gibberish"].language.code is None
    assert results["gibberish"].language.reason == "low_confidence"
    nul = results["nul inside"]
    assert nul.intent.label == "order_status"
    entity = nul.entities[0]
    assert entity.normalized == "5512"
    assert cases["nul inside"][entity.start : entity.end] == entity.text  # offsets kept
    assert any("Control characters" in n for n in nul.notes)


def test_long_text_is_cut_and_said_so(analyzer: Analyzer) -> None:
    words = "My parcel never arrived and nobody answers my emails. " * 60  # > 512 tokens
    huge = "Refund please. " * 2000  # 30,000 characters > ai.max_text_chars
    long, very_long = analyzer.analyze([AnalyzeRequest(words), AnalyzeRequest(huge)])
    assert long.truncated
    assert any("encoder's window is 512 tokens" in n for n in long.notes)
    # the cut is where the encoder stops reading: the kept part alone gives the same answer
    (kept,) = analyzer.texts_to_encode(analyzer.prepare([AnalyzeRequest(words)]))
    assert 1000 < len(kept) < len(words)
    assert words.startswith(kept)
    assert len(analyzer.encoder.tokenizer.encode("query: " + kept).ids) <= 512  # type: ignore[attr-defined]
    alone = analyzer.analyze([AnalyzeRequest(kept)])[0]
    assert alone.intent.label == long.intent.label
    # (int8 activations are quantized per batch: a few points of drift)
    assert alone.intent.confidence == pytest.approx(long.intent.confidence, abs=0.05)
    assert very_long.truncated
    assert any("only the first 19," in n for n in very_long.notes)
    assert all(e.end <= 20_000 for e in very_long.entities)


def test_abstains_below_min_confidence(analyzer: Analyzer) -> None:
    strict = Analyzer(analyzer.bundle, AiSettings(min_confidence=0.995))
    results = strict.analyze([AnalyzeRequest("hmm, about that thing from before")] * 2)
    for r in results:
        assert r.intent.label is None
        assert r.intent.reason == "low_confidence"
        assert r.intent.confidence < 0.995
        assert r.intent.probabilities
        assert r.urgency.label is None
        assert r.urgency.reason == "low_confidence"


def test_tenant_taxonomy_custom_and_disabled(analyzer: Analyzer) -> None:
    taxonomy = TenantTaxonomy(disabled=("order_status",), custom=(GIFT_CARD,))
    texts = [
        "what's the remaining balance of my gift voucher?",
        "mi tarjeta regalo no funciona al pagar",
        "When will my order arrive?",
        "I want to cancel my subscription",
    ]
    results = analyzer.analyze([AnalyzeRequest(t, taxonomy=taxonomy) for t in texts])
    assert [r.intent.label for r in results[:2]] == ["gift_card", "gift_card"]
    assert results[2].intent.label != "order_status"
    assert results[3].intent.label == "cancel"
    for r in results:
        assert "order_status" not in r.intent.probabilities
        assert "gift_card" in r.intent.probabilities
    # the same request without the taxonomy: default labels only
    plain = analyzer.analyze([AnalyzeRequest(texts[2])])[0]
    assert plain.intent.label == "order_status"
    assert "gift_card" not in plain.intent.probabilities


def test_taxonomy_classifier_is_cached_and_bad_intents_are_noted(
    analyzer: Analyzer, counting: CountingEncoder
) -> None:
    broken = CustomIntentSpec("billing", "clashes with a default label", ("a", "b", "c"))
    thin = CustomIntentSpec("loyalty", "loyalty points", ("where are my points?",))
    taxonomy = TenantTaxonomy(disabled=("not_a_label",), custom=(GIFT_CARD, broken, thin))
    first = analyzer.analyze([AnalyzeRequest("my gift card is not accepted", taxonomy=taxonomy)])
    second = analyzer.analyze([AnalyzeRequest("gift card balance?", taxonomy=taxonomy)])
    assert counting.calls == [1, 1]  # the examples were embedded once, outside this encoder
    assert first[0].intent.label == second[0].intent.label == "gift_card"
    assert any("'billing' was ignored" in n for n in first[0].notes)
    assert any("'loyalty' was ignored" in n and "at least 3" in n for n in first[0].notes)
    assert "loyalty" not in first[0].intent.probabilities


def test_urgency_reads_channel_and_repeat_contacts(analyzer: Analyzer) -> None:
    text = "My refund still has not arrived."
    first, repeated = analyzer.analyze(
        [
            AnalyzeRequest(text, channel="email", repeat_contacts=0),
            AnalyzeRequest(text, channel="email", repeat_contacts=5),
        ]
    )

    def pressing(r: object) -> float:
        probs = r.urgency.probabilities  # type: ignore[attr-defined]
        return float(probs["high"] + probs["urgent"])

    assert pressing(repeated) > pressing(first)


def test_hashing_bundle_answers_without_heads(tmp_path: Path) -> None:
    ai = AiSettings(encoder="hashing")
    bundle = load_bundle(tmp_path, ai, build_if_missing=False)
    assert bundle.intent is None
    assert bundle.unavailable == "no head trained for encoder hashing"
    hashing = Analyzer(bundle, ai)
    prepared = hashing.prepare([AnalyzeRequest("Where is my order #4411?")])
    assert hashing.texts_to_encode(prepared) == []
    result = hashing.finish([AnalyzeRequest("Where is my order #4411?")], prepared, np.zeros((0,)))[
        0
    ]
    for label in (result.intent, result.sentiment, result.urgency):
        assert label.label is None
        assert label.reason == "no head trained for encoder hashing"
    assert result.language.code == "en"
    assert [e.normalized for e in result.entities] == ["4411"]
    assert hashing.versions()["encoder"] == "hashing@hashing-v1-384"


def test_bundle_is_cached_by_content(
    analyzer: Analyzer, models_cache: Path, tmp_path: Path
) -> None:
    folder = heads_dir_for(models_cache, analyzer.encoder)
    assert analyzer.versions()["heads"] == folder.name
    assert (folder / "relaydesk-build.json").is_file()
    again = load_bundle(models_cache, AiSettings(), build_if_missing=False)
    assert again.versions() == analyzer.bundle.versions()
    other = CountingEncoder(analyzer.encoder)
    other.version = "0" * 16
    assert heads_dir_for(models_cache, other) != folder  # another encoder, other heads
    with pytest.raises(ModelsNotBuiltError, match="relaydesk models build"):
        load_bundle(tmp_path, AiSettings(), build_if_missing=False)


async def test_local_models_load_once_and_report_failures(analyzer: Analyzer) -> None:
    loads: list[int] = []

    def load() -> Analyzer:
        loads.append(1)
        return analyzer

    models = LocalModels(load)
    assert models.loaded is None
    assert await models.versions() == {"churn": "support-signals-1"}
    first, second = await models.analyze([AnalyzeRequest("hi")]), await models.analyze([])
    assert first[0].intent.label == "greeting"
    assert second == []
    assert loads == [1]
    assert (await models.versions())["intent"] == analyzer.versions()["intent"]
    vectors = await models.embed(["Returns within 30 days"], "passage")
    assert vectors.shape == (1, analyzer.encoder.dim)
    with pytest.raises(ModelUnavailableError, match="knowledge retrieval is not available"):
        await models.kb_search(uuid.uuid4(), "returns")
    await models.kb_refresh(uuid.uuid4())  # nothing to refresh: not an error

    def broken() -> Analyzer:
        raise ModelsNotBuiltError("the e5 encoder is not built: run `relaydesk models build`")

    with pytest.raises(ModelUnavailableError, match="relaydesk models build"):
        await LocalModels(broken).analyze([AnalyzeRequest("hi")])


def test_models_build_picks_the_encoder_for_the_heads() -> None:
    assert heads_encoder(None, onnx=True) == "e5-onnx"  # the configured default
    assert heads_encoder(None, onnx=False) == "e5-torch"
    assert heads_encoder("minilm", onnx=True) == "minilm"
    assert heads_encoder("hashing", onnx=True) is None
    with pytest.raises(typer.BadParameter, match="expected one of"):
        heads_encoder("bert", onnx=True)
