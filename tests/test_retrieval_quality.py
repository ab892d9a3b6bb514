"""Held-out KB retrieval quality with the real e5 (int8 ONNX) on the shipped multilingual set.

The floors sit a little under the measured figures (models/retrieval/README.md) so that a
regression fails while run-to-run noise of the int8 kernels does not. Embeddings are cached
in the models cache, so a warm run takes seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.encoder import load_encoder
from models.retrieval import evaluate_retrieval

RECALL_AT_3_FLOOR = 0.85  # measured 0.905; the target is 0.90
CROSS_LINGUAL_FLOOR = 0.75  # measured 0.830
LANGUAGE_FLOOR = 0.65  # the weakest language (de) measured 0.750


@pytest.fixture(scope="module")
def held_out(models_cache: Path) -> dict[str, Any]:
    encoder = load_encoder("e5-onnx", models_cache)
    return evaluate_retrieval(encoder, split="test", cache_dir=models_cache)


@pytest.mark.slow
def test_held_out_recall_at_3_meets_the_floor(held_out: dict[str, Any]) -> None:
    hybrid = held_out["hybrid"]
    assert held_out["queries"] >= 100
    assert hybrid["overall"]["recall@3"] >= RECALL_AT_3_FLOOR, held_out["hybrid_misses_at_3"]
    assert hybrid["per_language"]["cross_lingual"]["recall@3"] >= CROSS_LINGUAL_FLOOR
    for language in ("en", "es", "pt", "fr", "de", "it"):
        assert hybrid["per_language"][language]["recall@3"] >= LANGUAGE_FLOOR, language


@pytest.mark.slow
def test_fusion_beats_bm25_alone_and_keeps_up_with_vectors(held_out: dict[str, Any]) -> None:
    hybrid, vector, lexical = (held_out[m]["overall"] for m in ("hybrid", "vector", "lexical"))
    assert hybrid["recall@3"] >= lexical["recall@3"] + 0.2
    assert hybrid["recall@3"] >= vector["recall@3"] - 0.02
    assert hybrid["mrr"] >= vector["mrr"] - 0.02
