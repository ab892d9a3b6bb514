"""`python -m models.heads [--out DIR] [--json]`: train the intent, sentiment and urgency heads
on the shipped data, save them, and print the held-out model-card section."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from models.encoder import load_encoder
from models.heads.data import SUPPORT_TEST, load_support
from models.heads.evaluate import evaluate_heads, render_model_card
from models.heads.intent import train_intent_head
from models.heads.sentiment import TEST_SOURCE, train_sentiment_head
from models.heads.urgency import UrgencyModel, train_urgency_head


def main(argv: Sequence[str] | None = None) -> int:
    """Train the three heads on the shipped data, save them, print the model-card section."""
    from training.datasets import load_vader  # training-time only: fetches from PyPI

    parser = argparse.ArgumentParser(prog="python -m models.heads.evaluate")
    parser.add_argument("--models-dir", type=Path, default=Path(".relaydesk/models-cache"))
    parser.add_argument("--data-dir", type=Path, default=Path(".relaydesk/datasets"))
    parser.add_argument("--encoder", default="e5-onnx")
    parser.add_argument("--out", type=Path, default=None, help="save the heads here")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    encoder = load_encoder(args.encoder, args.models_dir)
    train, test = load_support(), load_support(SUPPORT_TEST)
    vader = load_vader(args.data_dir)
    cache = args.models_dir
    intent = train_intent_head(encoder, train, cache_dir=cache)
    reviews = [r for r in vader if r.source != TEST_SOURCE]
    sentiment = train_sentiment_head(encoder, reviews, train, cache_dir=cache)
    urgency = UrgencyModel(
        train_urgency_head(encoder, train, sentiment, cache_dir=cache), sentiment
    )
    if args.out:
        for name, head in (("intent", intent), ("sentiment", sentiment), ("urgency", urgency.head)):
            head.save(args.out / name)
    tweets = [r for r in vader if r.source == TEST_SOURCE]
    result = evaluate_heads(
        encoder,
        test,
        intent=intent,
        sentiment=sentiment,
        urgency=urgency,
        tweets=tweets,
        cache_dir=cache,
    )
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2) if args.json else render_model_card(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
