"""A tenant's category model from its own labelled tickets (`models/category.py`: TF-IDF and
the e5 embedding, stacked and calibrated). Validation: the trainer's 5-fold out-of-fold scores.

Data: `--data` (CSV, Parquet or JSONL; `text_column`, `label_column`); without it the CFPB
complaints' `train.csv` (label column `product`), the worked example."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from training.jobs.base import Evaluation, Trained, classification_evaluation, shuffled
from training.jobs.config import CategoryJobConfig, JobConfig
from training.jobs.context import JobContext
from training.jobs.data import (
    DataError,
    check_classes,
    frame_sha256,
    frozen_split,
    labelled_texts,
    read_table,
    thin,
)

if TYPE_CHECKING:
    from training.feedback import FeedbackExample


def category_frame(config: CategoryJobConfig, ctx: JobContext) -> pd.DataFrame:
    if config.data is None:
        from training.datasets import load_cfpb

        return labelled_texts(load_cfpb("train", ctx.datasets_dir), "text", "product", where="CFPB")
    label = config.label_column or "label"
    raw = read_table(config.data)
    return labelled_texts(raw, config.text_column, label, where=str(config.data))


class CategoryJob:
    task: ClassVar[str] = "category"
    config_type: ClassVar[type[JobConfig]] = CategoryJobConfig
    primary_metric: ClassVar[str] = "macro_f1"
    description: ClassVar[str] = "ticket category from a tenant's labelled tickets"

    def train(
        self,
        config: Any,
        ctx: JobContext,
        workdir: Path,
        feedback: Sequence[FeedbackExample],
    ) -> Trained:
        from models.category import CategoryConfig, train_or_load_category_model
        from models.pyfunc import CATEGORY_FILE, CATEGORY_META, CategoryPyfunc, text_signature

        df = category_frame(config, ctx)
        df = df.iloc[thin(len(df), config.max_rows)].reset_index(drop=True)[["text", "label"]]
        check_classes(df["label"].tolist(), where="category data")
        split = frozen_split(
            df["text"].tolist(), df["label"].tolist(), seed=config.seed,
            test_fraction=config.test_fraction,
        )  # fmt: skip
        pool, test = df.iloc[split.train], df.iloc[split.test].reset_index(drop=True)
        labels = pool["label"].tolist()
        counts = pool["label"].value_counts()
        if small := sorted(counts[counts < config.folds].index):
            raise DataError(
                f"categories with fewer than {config.folds} training rows: {small}; add rows or "
                "lower `folds`"
            )
        if config.shuffle_labels:
            labels = shuffled(labels, config.seed)
        texts = pool["text"].tolist()
        embeddings = None
        if config.use_embeddings:
            ctx.progress(f"embedding {len(df)} tickets")
            ctx.prime(df["text"].tolist())
            embeddings = ctx.embed(texts)
        ctx.progress(f"training the category model on {len(texts)} tickets")
        model = train_or_load_category_model(
            ctx.models_dir,
            texts,
            labels,
            embeddings,
            encoder=ctx.encoder if config.use_embeddings else None,
            config=CategoryConfig(
                text_c=config.text_c, embed_c=config.embed_c, folds=config.folds, seed=config.seed
            ),
        )
        folder = workdir / "model"
        model.save(folder / CATEGORY_FILE)
        meta = {"uses_embeddings": model.uses_embeddings, "labels": list(model.labels)}
        (folder / CATEGORY_META).write_text(json.dumps(meta, indent=2) + "\n")
        evaluation = self.evaluate(folder, test, ctx)
        oof = model.info["oof_accuracy"]
        return Trained(
            folder=folder,
            test_set=test,
            evaluation=evaluation,
            data_sha256=frame_sha256(df),
            rows={"train": len(texts), "validation": len(texts), "test": len(test)},
            validation={f"oof_accuracy_{k}": float(v) for k, v in oof.items()},
            params={**model.info["config"], "use_embeddings": config.use_embeddings},
            python_model=CategoryPyfunc(),
            signature=text_signature(),
            input_example=pd.DataFrame({"text": test["text"].head(2).tolist()}),
            uses_encoder=config.use_embeddings,
            notes=["validation: 5-fold out-of-fold predictions over the training rows"],
        )

    def evaluate(self, folder: Path, test_set: pd.DataFrame, ctx: JobContext) -> Evaluation:
        from models.category import CategoryModel
        from models.pyfunc import CATEGORY_FILE, CATEGORY_META

        meta = json.loads((folder / CATEGORY_META).read_text())
        encoder = ctx.encoder if meta["uses_embeddings"] else None
        model = CategoryModel.load(folder / CATEGORY_FILE, encoder)
        texts = test_set["text"].astype(str).tolist()
        x = ctx.embed(texts) if encoder is not None else None
        return classification_evaluation(
            test_set["label"].tolist(), model.predict_proba(texts, x), model.labels
        )
