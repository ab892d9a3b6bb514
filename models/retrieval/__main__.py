"""`python -m models.retrieval [--split test|dev|all] [--sweep] [--json]`: evaluate KB
retrieval on the shipped multilingual set (hybrid, vector-only, BM25-only), or print the
dev-split parameter sweep."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from models.encoder import load_encoder
from models.retrieval.evaluate import evaluate_retrieval, summarize, sweep


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate on one split, or sweep the parameters on the dev split."""
    parser = argparse.ArgumentParser(prog="python -m models.retrieval")
    parser.add_argument("--models-dir", type=Path, default=Path(".relaydesk/models-cache"))
    parser.add_argument("--encoder", default="e5-onnx")
    parser.add_argument("--split", choices=("dev", "test", "all"), default="test")
    parser.add_argument("--language-hint", action="store_true", help="pass query languages")
    parser.add_argument("--sweep", action="store_true", help="dev-split parameter grid")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    encoder = load_encoder(args.encoder, args.models_dir)
    if args.sweep:
        for row in sweep(encoder, cache_dir=args.models_dir):
            print(json.dumps(row))
        return 0
    result = evaluate_retrieval(
        encoder, split=args.split, cache_dir=args.models_dir, language_hint=args.language_hint
    )
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else summarize(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
