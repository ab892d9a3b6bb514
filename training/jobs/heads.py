"""Intent, sentiment and urgency heads: the same training code as `models.bundle.build_heads`
(`train_intent_head`, `train_sentiment_head`, `train_urgency_head`), on the training pool of a
frozen split, scored on its test rows.

Data: `models/data/support_train.jsonl` (or `--data`: a table with a text column and the
task's label column, optional `lang` and `channel`); sentiment adds the VADER ground truth
(amazon, nyt, movies; never the tweets). Validation: inside `CalibratedHead.fit`, a stratified
20% of the pool on which the temperature and C are chosen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from training.jobs.base import Evaluation, Trained, classification_evaluation, shuffled
from training.jobs.config import IntentConfig, JobConfig, SentimentConfig, UrgencyConfig
from training.jobs.context import JobContext
from training.jobs.data import (
    DataError,
    frame_sha256,
    frozen_split,
    labelled_texts,
    read_table,
    thin,
)

if TYPE_CHECKING:
    from models.heads import SentimentModel, SupportExample
    from training.feedback import FeedbackExample

SUPPORT = "support"
FEEDBACK = "feedback"


@dataclass(frozen=True)
class _Scored:
    """A VADER row as `train_sentiment_head` reads it (`ScoredText`)."""

    text: str
    source: str
    label: str


def support_frame(task: str, config: JobConfig) -> pd.DataFrame:
    """text, label, lang, channel, source of the labelled support messages."""
    if config.data is None:
        from models.heads import SUPPORT_TRAIN

        raw = pd.read_json(SUPPORT_TRAIN, lines=True)
        df = labelled_texts(raw, "text", task, where=str(SUPPORT_TRAIN))
    else:
        label = config.label_column or task
        df = labelled_texts(
            read_table(config.data), config.text_column, label, where=str(config.data)
        )
    for column in ("lang", "channel"):
        df[column] = df[column].fillna("").astype(str) if column in df.columns else ""
    df["source"] = SUPPORT
    return df.loc[:, ["text", "label", "lang", "channel", "source"]]


def vader_frame(ctx: JobContext) -> pd.DataFrame:
    from models.heads.sentiment import TEST_SOURCE
    from training.datasets import load_vader

    rows = [r for r in load_vader(ctx.datasets_dir) if r.source != TEST_SOURCE]
    return pd.DataFrame(
        {
            "text": [r.text for r in rows],
            "label": [r.label for r in rows],
            "lang": "en",
            "channel": "",
            "source": [r.source for r in rows],
        }
    )


def _examples(task: str, df: pd.DataFrame) -> list[SupportExample]:
    """Rows as the head trainers read them: the task's label in its field, the rest blank."""
    from models.heads import SupportExample

    out = []
    for text, label, lang, channel in df[["text", "label", "lang", "channel"]].itertuples(
        index=False
    ):
        fields = {"intent": "", "urgency": "", "sentiment": "", task: label}
        out.append(SupportExample(text=text, lang=lang, channel=channel, **fields))
    return out


def feedback_frame(feedback: Sequence[FeedbackExample]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [f.text for f in feedback],
            "label": [f.label for f in feedback],
            "lang": [f.language or "" for f in feedback],
            "channel": "",
            "source": FEEDBACK,
        },
        columns=["text", "label", "lang", "channel", "source"],
    )


class HeadJob:
    """One of the three heads; `task` picks which."""

    primary_metric: ClassVar[str] = "macro_f1"
    task: ClassVar[str]
    config_type: ClassVar[type[JobConfig]]
    description: ClassVar[str]

    def frame(self, config: Any, ctx: JobContext) -> pd.DataFrame:
        return support_frame(self.task, config)

    def strata(self, df: pd.DataFrame) -> list[str]:
        return [str(v) for v in df["label"]]

    def train(
        self,
        config: Any,
        ctx: JobContext,
        workdir: Path,
        feedback: Sequence[FeedbackExample],
    ) -> Trained:
        df = self.frame(config, ctx)
        df = df.iloc[thin(len(df), config.max_rows)].reset_index(drop=True)
        if df.empty:
            raise DataError(f"no labelled rows for {self.task}")
        ctx.progress("embedding the data")
        for source in df["source"].unique():  # one block per source: the bundle's cache keys
            ctx.prime(df.loc[df["source"] == source, "text"].tolist())
        split = frozen_split(
            df["text"].tolist(),
            self.strata(df),
            seed=config.seed,
            test_fraction=config.test_fraction,
        )
        pool, test = df.iloc[split.train].copy(), df.iloc[split.test].reset_index(drop=True)
        if config.shuffle_labels:
            pool["label"] = shuffled(pool["label"].tolist(), config.seed)
        extra = feedback_frame(feedback)
        dropped = int(extra["text"].isin(set(test["text"])).sum())
        extra = extra.loc[~extra["text"].isin(set(test["text"]))]
        # A tenant's own intents are few-shot classes of that tenant, not classes of the
        # shared head: their corrections stay out of it.
        foreign = ~extra["label"].isin(set(df["label"]))
        unknown_labels = sorted(set(extra.loc[foreign, "label"]))
        extra = extra.loc[~foreign]
        pool = pd.concat([pool, extra], ignore_index=True)
        ctx.progress(f"training {self.task} on {len(pool)} rows")
        folder = workdir / "model"
        head = self.fit(config, ctx, pool, folder)
        ctx.progress(f"scoring {self.task} on {len(test)} test rows")
        evaluation = self.evaluate(folder, test, ctx)
        info = head.info
        notes = (
            [f"{dropped} feedback examples whose text is in the test set were left out"]
            if dropped
            else []
        )
        if unknown_labels:
            notes.append(
                f"{int(foreign.sum())} feedback examples with labels outside the head's "
                f"classes were left out: {', '.join(unknown_labels)}"
            )
        from models.pyfunc import HeadPyfunc, text_signature

        return Trained(
            folder=folder,
            test_set=test,
            evaluation=evaluation,
            data_sha256=frame_sha256(df),
            rows={
                "train": int(info["n_train"]),
                "validation": int(info["n_val"]),
                "test": len(test),
                "feedback": len(extra),
            },
            validation={
                "accuracy": float(info["val_accuracy"]),
                "ece": float(info["val_ece"]),
                "nll": float(info["val_nll"]),
            },
            params={"C": info["C"], "c_grid": info["c_grid"], "sources": _sources(pool)},
            python_model=HeadPyfunc(self.task),
            signature=text_signature(),
            input_example=pd.DataFrame({"text": test["text"].head(2).tolist()}),
            notes=notes,
        )

    def fit(self, config: Any, ctx: JobContext, pool: pd.DataFrame, folder: Path) -> Any:
        raise NotImplementedError

    def evaluate(self, folder: Path, test_set: pd.DataFrame, ctx: JobContext) -> Evaluation:
        from models.heads import CalibratedHead, SentimentModel
        from models.heads.sentiment import resolve_languages
        from models.registry import load_head

        model = load_head(self.task, folder, ctx.encoder)
        texts = test_set["text"].astype(str).tolist()
        x = ctx.embed(texts)
        truth = test_set["label"].tolist()
        if isinstance(model, CalibratedHead):
            return classification_evaluation(truth, model.predict_proba(x), model.labels)
        # the table's `lang` where given, else detected (as the analyzer does)
        langs = resolve_languages(texts, [lang or None for lang in test_set["lang"].astype(str)])
        if isinstance(model, SentimentModel):
            return classification_evaluation(
                truth, model.predict_proba(x, texts, langs), model.labels
            )
        channels = [c or None for c in test_set["channel"].astype(str)]
        probs = model.head.predict_proba(model.features(x, texts, langs, channels))
        return classification_evaluation(truth, probs, model.head.labels)


def _sources(pool: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in pool["source"].value_counts().sort_index().items()}


def _grid(config: Any, default: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(config.c_grid) if config.c_grid else default


class IntentJob(HeadJob):
    task = "intent"
    config_type: ClassVar[type[JobConfig]] = IntentConfig
    description = "intent head (16 labels of docs/taxonomy.md) over the e5 embedding"

    def fit(self, config: Any, ctx: JobContext, pool: pd.DataFrame, folder: Path) -> Any:
        from models.heads import train_intent_head
        from models.heads.intent import INTENT_C_GRID

        head = train_intent_head(
            ctx.memo_encoder,
            _examples("intent", pool),
            c_grid=_grid(config, INTENT_C_GRID),
            seed=config.seed,
        )
        head.save(folder)
        return head


class SentimentJob(HeadJob):
    task = "sentiment"
    config_type: ClassVar[type[JobConfig]] = SentimentConfig
    description = "sentiment head (negative / neutral / positive), VADER + support messages"

    def frame(self, config: Any, ctx: JobContext) -> pd.DataFrame:
        support = support_frame("sentiment", config)
        if not config.include_vader:
            return support
        return pd.concat([vader_frame(ctx), support], ignore_index=True)

    def strata(self, df: pd.DataFrame) -> list[str]:
        return [f"{s}/{lab}" for s, lab in zip(df["source"], df["label"], strict=True)]

    def fit(self, config: Any, ctx: JobContext, pool: pd.DataFrame, folder: Path) -> Any:
        from models.heads import train_sentiment_head
        from models.heads.sentiment import SENTIMENT_C_GRID

        is_vader = ~pool["source"].isin([SUPPORT, FEEDBACK])
        vader = [
            _Scored(t, s, lab)
            for t, s, lab in pool.loc[is_vader, ["text", "source", "label"]].itertuples(index=False)
        ]
        head = train_sentiment_head(
            ctx.memo_encoder,
            vader,
            _examples("sentiment", pool.loc[~is_vader]),
            support_weight=config.support_weight,
            lexicon_weight=config.lexicon_weight,
            c_grid=_grid(config, SENTIMENT_C_GRID),
            seed=config.seed,
        )
        head.save(folder)
        return head


class UrgencyJob(HeadJob):
    task = "urgency"
    config_type: ClassVar[type[JobConfig]] = UrgencyConfig
    description = "urgency head (low / normal / high / urgent): embedding + sentiment + channel"

    def fit(self, config: Any, ctx: JobContext, pool: pd.DataFrame, folder: Path) -> Any:
        from models.heads import train_urgency_head
        from models.heads.urgency import URGENCY_C_GRID
        from models.registry import URGENCY_SENTIMENT

        sentiment, origin = sentiment_head(config.sentiment, ctx)
        ctx.progress(f"urgency reads sentiment head {origin}")
        head = train_urgency_head(
            ctx.memo_encoder,
            _examples("urgency", pool),
            sentiment,
            c_grid=_grid(config, URGENCY_C_GRID),
            seed=config.seed,
        )
        head.info["sentiment_origin"] = origin
        head.save(folder)
        sentiment.save(folder / URGENCY_SENTIMENT)
        return head


def sentiment_head(which: str, ctx: JobContext) -> tuple[SentimentModel, str]:
    """(the sentiment model urgency is trained on, where it came from)."""
    from models.bundle import build_heads
    from models.heads import SentimentModel

    if which == "champion":
        ref = ctx.registry.champion("sentiment")
        if ref is not None:
            try:
                return SentimentModel.load(ctx.registry.fetch(ref), ctx.encoder), ref.label
            except ValueError as exc:  # another encoder, or saved before the lexicon features
                ctx.progress(f"the sentiment champion {ref.label} cannot be used ({exc})")
    folder = build_heads(ctx.models_dir, ctx.encoder, datasets_dir=ctx.datasets_dir)
    return SentimentModel.load(folder / "sentiment", ctx.encoder), f"bundle/{folder.name}"
