"""Fusing the vector and BM25 rankings into one.

Reciprocal-rank fusion (Cormack et al., 2009) scores a key by Σ wᵢ / (k + rankᵢ) and needs
no calibration between the two scorers, whose scales differ (cosine in [-1, 1] against BM25
sums that grow with query length). The min-max blend is kept for comparison on the dev
split (see the package README for the figures that chose RRF)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["min_max_blend", "reciprocal_rank_fusion"]

Ranked = Sequence[tuple[int, float]]


def reciprocal_rank_fusion(
    rankings: Sequence[Ranked], weights: Sequence[float], k: int = 60
) -> dict[int, float]:
    """key → Σ weight / (k + rank), ranks from 1; a key absent from a ranking gets nothing
    from it."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (key, _score) in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return fused


def min_max_blend(rankings: Sequence[Ranked], weights: Sequence[float]) -> dict[int, float]:
    """key → Σ weight · (score - min) / (max - min) over each ranking's candidates; a key
    absent from a ranking gets 0 from it."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        scores = [s for _key, s in ranking]
        low, span = min(scores), max(scores) - min(scores)
        for key, score in ranking:
            normalized = (score - low) / span if span > 0 else 1.0
            fused[key] = fused.get(key, 0.0) + weight * normalized
    return fused
