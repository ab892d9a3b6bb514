"""What every section of an evaluation run shares: settings, the encoder, the data and the
three trained heads, each built once on first use.

`fast` mode cuts every data set to a fixed slice (`Slices`) for a quick sanity run of the
whole pipeline; its figures are not comparable with the targets."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import pandas as pd

    from models.encoder import Encoder
    from models.heads import CalibratedHead, SentimentModel, SupportExample, UrgencyModel
    from training.datasets import VaderText

T = TypeVar("T")


@dataclass(frozen=True)
class Slices:
    """Every `step`-th row of each data set in fast mode (deterministic, class mix kept)."""

    vader_train_step: int = 8  # about 2,400 of the 19,503 non-tweet texts
    tweets_step: int = 6  # 700 of the 4,200 tweets
    cfpb_train_step: int = 10  # 1,000 of 10,000
    cfpb_test_step: int = 10  # 300 of 3,000


def every(rows: list[T], step: int) -> list[T]:
    return rows[::step] if step > 1 else rows


@dataclass
class EvalConfig:
    models_dir: Path
    datasets_dir: Path | None = None  # None: `training.datasets.default_cache_dir()`
    encoder: str = "e5-onnx"
    threads: int = 1
    fast: bool = False
    slices: Slices = field(default_factory=Slices)
    seed: int = 0


class EvalContext:
    """Lazily built shared state; a section only pays for what it reads."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config

    @property
    def fast(self) -> bool:
        return self.config.fast

    @property
    def cache_dir(self) -> Path:
        """Where embeddings and trained models are cached by content."""
        return self.config.models_dir

    @functools.cached_property
    def encoder(self) -> Encoder:
        from models.encoder import load_encoder

        return load_encoder(self.config.encoder, self.config.models_dir, self.config.threads)

    @functools.cached_property
    def support_train(self) -> list[SupportExample]:
        from models.heads import load_support

        return load_support()

    @functools.cached_property
    def support_test(self) -> list[SupportExample]:
        from models.heads import SUPPORT_TEST, load_support

        return load_support(SUPPORT_TEST)

    @functools.cached_property
    def vader(self) -> list[VaderText]:
        from training.datasets import load_vader

        return load_vader(self.config.datasets_dir)

    @property
    def vader_train(self) -> list[VaderText]:
        from models.heads.sentiment import TEST_SOURCE

        rows = [r for r in self.vader if r.source != TEST_SOURCE]
        return every(rows, self.config.slices.vader_train_step) if self.fast else rows

    @property
    def tweets(self) -> list[VaderText]:
        from models.heads.sentiment import TEST_SOURCE

        rows = [r for r in self.vader if r.source == TEST_SOURCE]
        return every(rows, self.config.slices.tweets_step) if self.fast else rows

    def cfpb(self, split: str) -> pd.DataFrame:
        from training.datasets import load_cfpb

        df = load_cfpb("train" if split == "train" else "test", self.config.datasets_dir)
        s = self.config.slices
        step = s.cfpb_train_step if split == "train" else s.cfpb_test_step
        return df.iloc[::step].reset_index(drop=True) if self.fast else df

    @functools.cached_property
    def heads(self) -> tuple[CalibratedHead, SentimentModel, UrgencyModel]:
        """(intent, sentiment, urgency) trained on the shipped data, as `models.bundle`
        trains them."""
        from models.heads import (
            UrgencyModel,
            train_intent_head,
            train_sentiment_head,
            train_urgency_head,
        )

        enc, train, cache = self.encoder, self.support_train, self.cache_dir
        intent = train_intent_head(enc, train, cache_dir=cache, seed=self.config.seed)
        sentiment = train_sentiment_head(
            enc, self.vader_train, train, cache_dir=cache, seed=self.config.seed
        )
        urgency = train_urgency_head(enc, train, sentiment, cache_dir=cache, seed=self.config.seed)
        return intent, sentiment, UrgencyModel(urgency, sentiment)

    @functools.cached_property
    def head_figures(self) -> dict[str, Any]:
        """`models.heads.evaluate_heads` on support_test and the tweets."""
        from models.heads import evaluate_heads

        intent, sentiment, urgency = self.heads
        return evaluate_heads(
            self.encoder,
            self.support_test,
            intent=intent,
            sentiment=sentiment,
            urgency=urgency,
            tweets=self.tweets,
            cache_dir=self.cache_dir,
        )
