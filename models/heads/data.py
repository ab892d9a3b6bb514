"""The project's labelled support messages (`models/data/support_{train,test}.jsonl`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SUPPORT_TRAIN = DATA_DIR / "support_train.jsonl"
# Written independently of the training set: evaluation only, never training or tuning.
SUPPORT_TEST = DATA_DIR / "support_test.jsonl"


@dataclass(frozen=True)
class SupportExample:
    text: str
    lang: str
    intent: str
    urgency: str
    sentiment: str
    channel: str


def load_support(path: Path = SUPPORT_TRAIN) -> list[SupportExample]:
    """One example per non-blank JSON line."""
    rows: list[SupportExample] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            rows.append(SupportExample(**{k: str(raw[k]) for k in SupportExample.__annotations__}))
    return rows
