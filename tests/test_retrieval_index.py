"""Knowledge retrieval pieces without a database: chunking bounds, the vector index port
(FAISS flat and HNSW against the numpy twin), BM25 analysis, fusion, citations and reply
cases. The hashing encoder stands in for e5 where only mechanics matter."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from core.domain.enums import Direction, SenderType
from models.encoder import HashingEncoder, build_e5
from models.retrieval import (
    ArticleDoc,
    ChunkingParams,
    FaissIndex,
    KbIndex,
    LanguageCentroids,
    NumpyIndex,
    RetrievalParams,
    VectorIndex,
    chunk_article,
    passage_text,
    reply_cases,
    text_weight,
)
from models.retrieval.evaluate import KB_ARTICLES
from models.retrieval.fusion import min_max_blend, reciprocal_rank_fusion
from models.retrieval.lexical import Analyzer, Bm25Index
from models.retrieval.sources import MessageRow

SENTENCES = [
    f"Sentence number {i} talks about {topic} in some detail."
    for i, topic in enumerate(["refunds", "parcels", "invoices", "passwords"] * 12)
]


def unit(rows: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    unit_vectors: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit_vectors


# --------------------------------------------------------------------------- chunking
@pytest.mark.parametrize(("max_chars", "overlap"), [(150, 60), (400, 120), (1000, 0)])
def test_chunks_stay_within_budget_and_cover_every_sentence(max_chars: int, overlap: int) -> None:
    body = "\n\n".join(" ".join(SENTENCES[i : i + 5]) for i in range(0, len(SENTENCES), 5))
    chunks = chunk_article(body, ChunkingParams(max_chars, overlap))
    assert all(len(c) <= max_chars for c in chunks)
    assert len(chunks) >= len(body) // max_chars
    for sentence in SENTENCES:
        assert any(sentence in c for c in chunks), sentence
    if overlap:
        # the next chunk starts with the closing sentence(s) of the previous one
        shared = sum(c.split(". ")[-1].strip() in n for c, n in itertools.pairwise(chunks))
        assert shared >= len(chunks) // 2


def test_chunking_cuts_overlong_words_and_weighs_dense_scripts() -> None:
    url = "https://example.test/" + "a" * 500
    chunks = chunk_article(f"See {url} for details. Thanks.", ChunkingParams(200, 50))
    assert all(len(c) <= 200 for c in chunks)
    assert "".join(chunks).replace(" ", "").count("a" * 150) >= 1
    cjk = chunk_article("退货政策说明。" * 60, ChunkingParams(300, 60))
    assert all(text_weight(c) <= 300 for c in cjk)
    assert text_weight("退货") == 6  # a CJK character counts as three
    assert all(c.endswith("。") for c in cjk)  # cut between sentences
    assert chunk_article("") == [""]
    with pytest.raises(ValueError):
        ChunkingParams(max_chars=50)


def test_every_shipped_chunk_fits_the_e5_token_limit(models_cache: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(build_e5(models_cache) / "tokenizer.json"))
    params = ChunkingParams()
    longest = 0
    for line in KB_ARTICLES.read_text(encoding="utf-8").splitlines():
        article = json.loads(line)
        for chunk in chunk_article(article["body"], params):
            ids = tokenizer.encode("passage: " + passage_text(article["title"], chunk)).ids
            longest = max(longest, len(ids))
    assert 0 < longest <= 512 // 2  # the default budget leaves half the window unused


# --------------------------------------------------------------------------- vector index
def test_faiss_flat_matches_the_numpy_twin_and_removes_exactly() -> None:
    vectors, keys = unit(300), np.arange(300, dtype=np.int64) * 3 + 7
    faiss_index, twin = FaissIndex(32, hnsw_min=1000), NumpyIndex(32)
    for index in (faiss_index, twin):
        assert isinstance(index, VectorIndex)
        index.add(keys, vectors)
        index.remove(keys[:100].tolist())
    assert faiss_index.kind == "flat"
    queries = unit(20, seed=1)
    f_scores, f_keys = faiss_index.search(queries, 5)
    t_scores, t_keys = twin.search(queries, 5)
    assert (f_keys == t_keys).all()
    np.testing.assert_allclose(f_scores, t_scores, atol=1e-5)
    assert not set(f_keys.ravel()) & set(keys[:100].tolist())
    scores, found = NumpyIndex(32).search(queries[:1], 3)  # empty: padded
    assert found.tolist() == [[-1, -1, -1]]
    assert np.isneginf(scores).all()


def test_faiss_switches_to_hnsw_at_the_threshold_and_back() -> None:
    vectors, keys = unit(700, seed=2), np.arange(700, dtype=np.int64)
    index, twin = FaissIndex(32, hnsw_min=500), NumpyIndex(32)
    kinds = []
    index.add(keys[:499], vectors[:499])
    kinds.append(index.kind)
    index.add(keys[499:], vectors[499:])
    twin.add(keys, vectors)
    kinds.append(index.kind)
    assert kinds == ["flat", "hnsw"]
    assert len(index) == 700
    index.remove(keys[:50].tolist())  # tombstones: never returned
    twin.remove(keys[:50].tolist())
    queries = (vectors[50:150] + 0.05 * unit(100, seed=3)).astype(np.float32)
    _, found = index.search(queries, 5)
    _, exact = twin.search(queries, 5)
    assert not set(found.ravel()) & set(range(50))
    recall = np.mean([len(set(f) & set(e)) / 5 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95
    index.add(keys[10:11], vectors[10:11])  # a removed key comes back
    assert 10 in index.search(vectors[10:11], 1)[1][0]
    index.remove(keys[:600].tolist())  # under half the threshold: exact again
    assert str(index.kind) == "flat"
    assert len(index) == 100


# --------------------------------------------------------------------------- lexical, fusion
def test_analyzer_folds_accents_stems_per_language_and_drops_stopwords() -> None:
    analyzer = Analyzer()
    assert analyzer.terms("Devoluciones", "es") == analyzer.terms("devolución", "es")
    assert analyzer.terms("Rücksendung", "de") == ["rucksend"]
    assert analyzer.terms("where is my parcel", "en") == ["parcel"]
    assert analyzer.terms("parcels", None) == ["parcels"]  # unknown language: not stemmed
    assert Analyzer(stem=False, stopwords=False).terms("the Café", "en") == ["the", "cafe"]


def test_bm25_ranks_matching_documents_and_forgets_removed_ones() -> None:
    bm25, analyzer = Bm25Index(), Analyzer()
    bm25.add(1, analyzer.terms("Refunds reach your card in ten days", "en"))
    bm25.add(2, analyzer.terms("Track a parcel with its tracking number", "en"))
    bm25.add(3, [])
    assert [k for k, _ in bm25.search(analyzer.terms("tracking my parcels", "en"), 3)] == [2]
    assert bm25.search(["unknownterm"], 3) == []
    bm25.remove([2])
    assert bm25.search(analyzer.terms("parcel", "en"), 3) == []


def test_fusion_rewards_agreement_between_rankings() -> None:
    vector, lexical = [(1, 0.9), (2, 0.8), (3, 0.1)], [(2, 12.0), (4, 3.0)]
    rrf = reciprocal_rank_fusion([vector, lexical], [1.0, 1.0], k=60)
    assert max(rrf, key=rrf.__getitem__) == 2
    blend = min_max_blend([vector, lexical], [1.0, 0.2])
    assert blend[2] == pytest.approx(1.0 * (0.7 / 0.8) + 0.2)
    assert blend[3] == 0.0
    assert min_max_blend([[], [(5, 1.0)]], [1.0, 1.0]) == {5: 1.0}


# --------------------------------------------------------------------------- KbIndex
def hashing_index(params: RetrievalParams | None = None) -> tuple[KbIndex, HashingEncoder]:
    encoder = HashingEncoder()
    centroids = LanguageCentroids.compute(encoder.encode)
    index = KbIndex(lambda dim: NumpyIndex(dim), params, centroids=centroids)
    return index, encoder


def put(index: KbIndex, encoder: HashingEncoder, article: ArticleDoc) -> None:
    index.put(article, encoder.encode(index.passages(article), "passage"))


def test_citations_name_the_article_and_the_chunk_that_answers() -> None:
    index, encoder = hashing_index(RetrievalParams(chunking=ChunkingParams(100, 0)))
    guide = ArticleDoc(
        uuid.uuid4(),
        "Shipping guide",
        "\n\n".join(
            [
                "Standard parcels take three to five business days within the union.",
                "Express parcels leave the warehouse the same afternoon when paid early.",
                "Bulky furniture travels with a freight carrier who telephones to book a slot.",
            ]
        ),
        "en",
    )
    other = ArticleDoc(uuid.uuid4(), "Gift cards", "Gift cards are valid for three years.", "en")
    for article in (guide, other):
        put(index, encoder, article)
    assert index.chunk_count == 4
    query = "freight carrier telephones to book a slot for bulky furniture"
    hits = index.search(query, encoder.encode([query], "query")[0], k=2, language="en")
    assert hits[0].citation.article_id == guide.id
    assert hits[0].citation.chunk == 2
    assert hits[0].citation.title == "Shipping guide"
    assert "freight carrier" in hits[0].text
    assert len({h.citation.article_id for h in hits}) == len(hits)  # one hit per article
    assert hits[0].score >= hits[-1].score
    # replacing the article drops its old chunks; removing it drops it entirely
    put(index, encoder, ArticleDoc(guide.id, "Shipping guide", "Only pickup points now.", "en"))
    assert index.chunk_count == 2
    index.remove([guide.id])
    hits = index.search(query, encoder.encode([query], "query")[0], k=5)
    assert [h.citation.article_id for h in hits] == [other.id]
    lexical = index.search("gift cards", None, k=5, mode="lexical")
    assert [h.citation.article_id for h in lexical] == [other.id]


# --------------------------------------------------------------------------- reply cases
def msg(direction: Direction, sender: SenderType, text: str, cid: uuid.UUID) -> MessageRow:
    return MessageRow(cid, direction.value, sender.value, text)


def test_reply_cases_pair_customer_runs_with_the_agent_reply() -> None:
    cid = uuid.uuid4()
    inbound, outbound = Direction.INBOUND, Direction.OUTBOUND
    customer, agent, bot = SenderType.CUSTOMER, SenderType.AGENT, SenderType.BOT
    messages = [
        msg(outbound, agent, "Welcome!", cid),  # nothing asked yet: not a case
        msg(inbound, customer, "My parcel is late", cid),
        msg(inbound, customer, "Order TW-12345678", cid),
        msg(outbound, bot, "An agent will answer soon", cid),  # bots are not agents
        msg(outbound, agent, "Sorry about that.", cid),
        msg(outbound, agent, "It ships tomorrow.", cid),
        msg(inbound, customer, "   ", cid),
        msg(inbound, customer, "Thanks!", cid),  # never answered: not a case
    ]
    cases = reply_cases(messages)
    assert [(c.customer_text, c.reply_text) for c in cases] == [
        ("My parcel is late\nOrder TW-12345678", "Sorry about that.\nIt ships tomorrow.")
    ]
    assert cases[0].conversation_id == cid
    assert reply_cases([]) == []
