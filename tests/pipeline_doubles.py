"""A model service double for pipeline tests about delivery, not model quality: it reads a
few keywords, answers in microseconds, can be slowed down, and fails on demand.

It is picklable (a Ray actor builds it from `StubModelsFactory`), and counts what it was
asked in a file when told to, so that a test can see calls made inside an actor."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

from models.service import Analysis, AnalyzeRequest, LabelResult, LanguageResultOut

FAIL = "[[fail-enrichment]]"


def _label(label: str | None, labels: tuple[str, ...], version: str) -> LabelResult:
    probabilities = {name: (0.9 if name == label else 0.1 / (len(labels) - 1)) for name in labels}
    return LabelResult(label, 0.9 if label else 0.0, probabilities, version)


def stub_analysis(text: str, version: str) -> Analysis:
    lower = text.lower()
    intent = (
        "return_refund"
        if "refund" in lower
        else "order_status"
        if "order" in lower
        else "greeting"
        if "hello" in lower
        else None
    )
    sentiment = (
        "negative"
        if any(w in lower for w in ("angry", "terrible", "awful"))
        else "positive"
        if "thanks" in lower
        else "neutral"
    )
    urgency = "urgent" if "urgent" in lower else "normal"
    return Analysis(
        language=LanguageResultOut("en", 0.99, f"lang-{version}"),
        intent=_label(intent, ("order_status", "return_refund", "greeting", "other"), version),
        sentiment=_label(sentiment, ("negative", "neutral", "positive"), version),
        urgency=_label(urgency, ("low", "normal", "high", "urgent"), version),
        entities=(),
        encoder_version=f"stub-encoder-{version}",
    )


class StubModels:
    def __init__(
        self,
        version: str = "v1",
        delay_s: float = 0.0,
        calls_file: str | None = None,
        fails: bool = True,
    ) -> None:
        self.fails = fails
        self.version = version
        self.delay_s = delay_s
        self.calls_file = calls_file
        self.calls: list[list[str]] = []

    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]:
        texts = [r.text for r in requests]
        self.calls.append(texts)
        if self.calls_file:
            line = json.dumps({"pid": os.getpid(), "texts": texts}) + "\n"
            await asyncio.to_thread(_append, Path(self.calls_file), line)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fails and any(FAIL in t for t in texts):
            raise RuntimeError("the model could not read this message")
        return [stub_analysis(t, self.version) for t in texts]

    async def versions(self) -> dict[str, str]:
        return {"encoder": f"stub-encoder-{self.version}"}

    async def close(self) -> None:
        return None


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(line)


@dataclass(frozen=True)
class StubModelsFactory:
    """What a consumer actor is given: it builds the double in the actor's process."""

    version: str = "v1"
    delay_s: float = 0.0
    calls_file: str | None = None
    fails: bool = True

    def __call__(self) -> StubModels:
        return StubModels(self.version, self.delay_s, self.calls_file, self.fails)


def read_calls(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
