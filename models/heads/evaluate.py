"""Held-out evaluation of the intent, sentiment and urgency heads, and its model-card section.

Held-out data: `support_test.jsonl` (intent, urgency, support-message sentiment; written
independently of the training set) and the VADER tweets (sentiment), never used in training
or tuning. `python -m models.heads` trains the three heads, saves them under `--out` and
prints the markdown section.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.encoder import Encoder
from models.heads.calibrated import ECE_BINS, CalibratedHead, expected_calibration_error
from models.heads.data import SupportExample
from models.heads.embeddings import embed_cached
from models.heads.sentiment import (
    LEXICON_LANGUAGE,
    TEST_SOURCE,
    ScoredText,
    SentimentModel,
    lexicon_labels,
)
from models.heads.urgency import UrgencyModel

TARGETS = {
    "intent_macro_f1": 0.85,
    "intent_ece": 0.05,
    "sentiment_ece": 0.05,
    "sentiment_tweets_accuracy": 0.76,
}


def classification_metrics(
    truth: Sequence[str],
    probabilities: npt.NDArray[np.floating[Any]],
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE (15 bins), per-class precision/recall/F1 and, when `groups`
    (e.g. languages) are given, macro-F1 and accuracy per group."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[t] for t in truth])
    pred = np.asarray(probabilities).argmax(axis=1)
    ks = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=ks, zero_division=0
    )
    out: dict[str, Any] = {
        "n": len(y),
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, labels=ks, average="macro", zero_division=0)),
        "ece": expected_calibration_error(probabilities, y, ECE_BINS),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }
    if groups is not None:
        g = np.asarray(groups)
        out["per_group"] = {
            name: {
                "n": int((g == name).sum()),
                "accuracy": float((pred[g == name] == y[g == name]).mean()),
                "macro_f1": float(
                    f1_score(y[g == name], pred[g == name], labels=ks, average="macro")
                ),
            }
            for name in sorted(set(g.tolist()))
        }
    return out


def evaluate_heads(
    encoder: Encoder,
    test: Sequence[SupportExample],
    *,
    intent: CalibratedHead,
    sentiment: SentimentModel,
    urgency: UrgencyModel,
    tweets: Sequence[ScoredText] = (),
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Every figure of the model card, as a dict (targets and pass/fail included).

    Languages: support_test's own `lang` column, and English for the tweets (VADER's data)."""
    texts = [e.text for e in test]
    x = embed_cached(encoder, texts, cache_dir, "query")
    langs = [e.lang for e in test]
    result: dict[str, Any] = {
        "encoder": {"name": encoder.name, "version": encoder.version},
        "targets": TARGETS,
        "intent": classification_metrics(
            [e.intent for e in test], intent.predict_proba(x), intent.labels, langs
        ),
        "sentiment_support": classification_metrics(
            [e.sentiment for e in test],
            sentiment.predict_proba(x, texts, langs),
            sentiment.labels,
            langs,
        ),
        "urgency": classification_metrics(
            [e.urgency for e in test],
            urgency.head.predict_proba(
                urgency.features(x, texts, langs, [e.channel for e in test])
            ),
            urgency.head.labels,
            langs,
        ),
    }
    if tweets:
        if any(t.source != TEST_SOURCE for t in tweets):
            raise ValueError("the sentiment test set is the VADER tweets only")
        tweet_texts = [t.text for t in tweets]
        truth = [t.label for t in tweets]
        xt = embed_cached(encoder, tweet_texts, cache_dir, "query")
        english = [LEXICON_LANGUAGE] * len(tweet_texts)
        result["sentiment_tweets"] = classification_metrics(
            truth, sentiment.predict_proba(xt, tweet_texts, english), sentiment.labels
        )
        lexicon = lexicon_labels(tweet_texts)
        result["sentiment_tweets"]["lexicon_baseline_accuracy"] = float(
            np.mean([a == b for a, b in zip(lexicon, truth, strict=True)])
        )
    result["checks"] = _checks(result)
    return result


def _checks(result: dict[str, Any]) -> dict[str, bool]:
    checks = {
        "intent_macro_f1": result["intent"]["macro_f1"] >= TARGETS["intent_macro_f1"],
        "intent_ece": result["intent"]["ece"] <= TARGETS["intent_ece"],
        "sentiment_ece (support)": result["sentiment_support"]["ece"] <= TARGETS["sentiment_ece"],
    }
    if "sentiment_tweets" in result:
        tweets = result["sentiment_tweets"]
        checks["sentiment_ece (tweets)"] = tweets["ece"] <= TARGETS["sentiment_ece"]
        checks["sentiment_tweets_accuracy"] = (
            tweets["accuracy"] >= TARGETS["sentiment_tweets_accuracy"]
        )
    return checks


def _row(name: str, m: dict[str, Any], extra: str = "") -> str:
    return (
        f"| {name} | {m['n']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['ece']:.3f} |"
        f" {extra} |"
    )


def render_model_card(result: dict[str, Any]) -> str:
    """The "Quality" section of a model card, in markdown."""
    enc = result["encoder"]
    lines = [
        "## Quality on held-out data",
        "",
        f"Encoder: {enc['name']} `{enc['version']}`. ECE: top-label, {ECE_BINS} equal bins.",
        "",
        "| task / test set | n | accuracy | macro-F1 | ECE | notes |",
        "|---|---|---|---|---|---|",
        _row("intent / support_test", result["intent"], "target macro-F1 ≥ 0.85, ECE ≤ 0.05"),
        _row("sentiment / support_test", result["sentiment_support"], "target ECE ≤ 0.05"),
    ]
    if "sentiment_tweets" in result:
        tweets = result["sentiment_tweets"]
        note = f"target accuracy ≥ 0.76; VADER lexicon {tweets['lexicon_baseline_accuracy']:.3f}"
        lines.append(_row("sentiment / VADER tweets", tweets, note))
    lines += [_row("urgency / support_test", result["urgency"]), ""]
    lines += [
        "### Per language (support_test)",
        "",
        "| language | intent macro-F1 | intent accuracy | sentiment accuracy | urgency macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for lang, m in result["intent"]["per_group"].items():
        s = result["sentiment_support"]["per_group"][lang]
        u = result["urgency"]["per_group"][lang]
        lines.append(
            f"| {lang} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} | {s['accuracy']:.3f} |"
            f" {u['macro_f1']:.3f} |"
        )
    for task in ("intent", "urgency"):
        lines += ["", f"### {task.capitalize()} per class", "", "| label | precision | recall |"]
        lines.append("|---|---|---|")
        for label, m in result[task]["per_class"].items():
            lines.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} |")
    failed = [name for name, ok in result["checks"].items() if not ok]
    lines += ["", f"Targets missed: {', '.join(failed) if failed else 'none'}.", ""]
    return "\n".join(lines)
