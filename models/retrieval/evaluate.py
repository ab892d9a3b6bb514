"""Offline evaluation of KB retrieval on the shipped multilingual set, without a database.

`models/data/kb_articles.jsonl` is a project-made help centre of a fictional online shop
(English, with local articles in es/pt/fr/de/it); `kb_queries.jsonl` holds questions written
separately, each with the ids of every article that answers it, and a `split`: `dev` (62
queries, for choosing chunking and fusion parameters) or `test` (105, held out). The index is
built with the same `KbIndex` the service uses. Metrics: recall@k (a relevant article among
the first k distinct articles) and MRR, overall, per query language and for cross-lingual
queries (no relevant article in the query's language), for the hybrid search and for the
vector-only and BM25-only baselines in the same run."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from models.encoder import Encoder
from models.heads.embeddings import embed_cached
from models.retrieval.centering import LanguageCentroids
from models.retrieval.chunking import ChunkingParams
from models.retrieval.kb_index import ArticleDoc, KbIndex, Mode, RetrievalParams
from models.retrieval.vectors import FaissIndex, VectorIndex

__all__ = [
    "KB_ARTICLES",
    "KB_QUERIES",
    "RECALL_TARGET",
    "KbQuery",
    "article_uuid",
    "build_index",
    "evaluate_retrieval",
    "load_articles",
    "load_queries",
    "sweep",
]

DATA = Path(__file__).resolve().parent.parent / "data"
KB_ARTICLES = DATA / "kb_articles.jsonl"
KB_QUERIES = DATA / "kb_queries.jsonl"
RECALL_TARGET = 0.90  # held-out recall@3 the issue asks for
MODES: tuple[Mode, ...] = ("hybrid", "vector", "lexical")
Split = Literal["dev", "test", "all"]
_NAMESPACE = uuid.UUID("5b7c1e0e-8a53-4c55-9d39-6f1d2b3f9a10")


@dataclass(frozen=True, slots=True)
class KbQuery:
    id: str
    language: str
    query: str
    relevant: frozenset[str]
    split: str


def article_uuid(slug: str) -> uuid.UUID:
    """The stable id an article of the shipped set gets in an index."""
    return uuid.uuid5(_NAMESPACE, slug)


def load_articles(path: Path = KB_ARTICLES) -> list[tuple[str, ArticleDoc]]:
    """(slug, article) pairs of the shipped KB."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        doc = ArticleDoc(article_uuid(row["id"]), row["title"], row["body"], row["language"])
        out.append((row["id"], doc))
    return out


def load_queries(path: Path = KB_QUERIES, split: Split = "test") -> list[KbQuery]:
    queries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if split in ("all", row["split"]):
            relevant = frozenset(row["relevant"])
            queries.append(
                KbQuery(row["id"], row["language"], row["query"], relevant, row["split"])
            )
    return queries


def build_index(
    encoder: Encoder,
    articles: Sequence[ArticleDoc],
    params: RetrievalParams | None = None,
    *,
    cache_dir: Path | None = None,
    vector_index: Callable[[int], VectorIndex] | None = None,
) -> KbIndex:
    """A `KbIndex` of `articles`, embedded with `encoder` in one batch (cached by content in
    `cache_dir` when given)."""
    params = params or RetrievalParams()
    centroids = None
    if params.center_languages:
        centroids = LanguageCentroids.compute(
            lambda texts, kind: embed_cached(encoder, texts, cache_dir, kind)
        )
    index = KbIndex(vector_index or (lambda dim: FaissIndex(dim)), params, centroids=centroids)
    passages = [index.passages(a) for a in articles]
    flat = [p for group in passages for p in group]
    vectors = embed_cached(encoder, flat, cache_dir, "passage")
    start = 0
    for article, group in zip(articles, passages, strict=True):
        index.put(article, vectors[start : start + len(group)])
        start += len(group)
    return index


def _metrics(ranks: Sequence[int | None]) -> dict[str, float | int]:
    """recall@1/3/5 and MRR from the 1-based rank of the first relevant article."""
    n = len(ranks)
    found = [r for r in ranks if r is not None]
    out: dict[str, float | int] = {"n": n}
    for k in (1, 3, 5):
        out[f"recall@{k}"] = round(sum(r <= k for r in found) / n, 4) if n else 0.0
    out["mrr"] = round(sum(1.0 / r for r in found) / n, 4) if n else 0.0
    return out


def evaluate_retrieval(
    encoder: Encoder,
    *,
    split: Split = "test",
    params: RetrievalParams | None = None,
    articles_path: Path = KB_ARTICLES,
    queries_path: Path = KB_QUERIES,
    cache_dir: Path | None = None,
    language_hint: bool = False,
    depth: int = 10,
) -> dict[str, Any]:
    """Hybrid, vector-only and BM25-only metrics on one split of the shipped query set.

    `language_hint`: pass each query's language as `kb_search`'s `language` (a caller that
    knows the conversation language); off by default, as the target is stated without it."""
    articles = load_articles(articles_path)
    slugs = {doc.id: slug for slug, doc in articles}
    article_languages = {slug: doc.language for slug, doc in articles}
    queries = load_queries(queries_path, split)
    index = build_index(encoder, [doc for _slug, doc in articles], params, cache_dir=cache_dir)
    query_vectors = embed_cached(encoder, [q.query for q in queries], cache_dir, "query")
    result: dict[str, Any] = {
        "split": split,
        "queries": len(queries),
        "articles": index.article_count,
        "chunks": index.chunk_count,
        "encoder": f"{encoder.name}@{encoder.version}",
        "params": _describe(index.params),
        "language_hint": language_hint,
    }
    misses: list[dict[str, Any]] = []
    for mode in MODES:
        ranks: list[int | None] = []
        groups: dict[str, list[int | None]] = defaultdict(list)
        for query, vector in zip(queries, query_vectors, strict=True):
            hits = index.search(
                query.query,
                vector,
                depth,
                language=query.language if language_hint else None,
                mode=mode,
            )
            found = [slugs[h.citation.article_id] for h in hits]
            rank = next((i for i, s in enumerate(found, 1) if s in query.relevant), None)
            ranks.append(rank)
            groups[query.language].append(rank)
            if all(article_languages[s] != query.language for s in query.relevant):
                groups["cross_lingual"].append(rank)
            if mode == "hybrid" and (rank is None or rank > 3):
                misses.append({"id": query.id, "query": query.query, "top3": found[:3]})
        result[mode] = {
            "overall": _metrics(ranks),
            "per_language": {lang: _metrics(r) for lang, r in sorted(groups.items())},
        }
    result["hybrid_misses_at_3"] = misses
    return result


def _describe(params: RetrievalParams) -> dict[str, Any]:
    return {
        "max_chars": params.chunking.max_chars,
        "overlap_chars": params.chunking.overlap_chars,
        "fusion": params.fusion,
        "rrf_k": params.rrf_k,
        "lexical_weight": params.lexical_weight,
        "candidates": params.candidates,
        "center_languages": params.center_languages,
        "stem": params.stem,
        "stopwords": params.stopwords,
    }


def sweep(encoder: Encoder, *, cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Dev-split hybrid metrics over the parameter grid that chose `RetrievalParams()`'s
    defaults; the test split is never read here."""
    base = RetrievalParams()
    variants: list[RetrievalParams] = [base, replace(base, center_languages=False)]
    for max_chars, overlap in ((300, 100), (550, 150), (700, 200), (1000, 250)):
        variants.append(replace(base, chunking=ChunkingParams(max_chars, overlap)))
    for weight in (0.1, 0.3, 0.5, 0.75):
        variants.append(replace(base, lexical_weight=weight))
    for weight in (1.0, 0.5, 0.25):
        variants.append(replace(base, fusion="rrf", lexical_weight=weight))
    variants.append(replace(base, stem=False))
    variants.append(replace(base, stopwords=False))
    rows = []
    for params in variants:
        scores = evaluate_retrieval(encoder, split="dev", params=params, cache_dir=cache_dir)
        rows.append(
            {
                "params": scores["params"],
                "hybrid": scores["hybrid"]["overall"],
                "vector": scores["vector"]["overall"],
                "lexical": scores["lexical"]["overall"],
            }
        )
    return rows


def summarize(result: dict[str, Any]) -> str:
    """A markdown table of one evaluation: mode x language, recall@3 (MRR)."""
    languages = list(result["hybrid"]["per_language"])
    lines = [
        "| search | overall | " + " | ".join(languages) + " |",
        "|---" * (len(languages) + 2) + "|",
    ]
    for mode in MODES:
        cells = [result[mode]["overall"], *result[mode]["per_language"].values()]
        row = " | ".join(f"{c['recall@3']:.3f} ({c['mrr']:.3f})" for c in cells)
        lines.append(f"| {mode} | {row} |")
    return "\n".join(lines)
