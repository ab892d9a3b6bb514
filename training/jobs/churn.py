"""The Telco churn model (`models/churn/telco.py`): candidates compared by stratified
cross-validated ROC-AUC on the training pool (the validation), the calibrated winner scored on
the frozen test rows. Data: the Telco `train.csv`, or `--data` with the same columns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from training.jobs.base import Evaluation, Trained, classification_evaluation, shuffled
from training.jobs.config import ChurnConfig, JobConfig
from training.jobs.context import JobContext
from training.jobs.data import frame_sha256, frozen_split, read_table, row_keys, thin

if TYPE_CHECKING:
    from training.feedback import FeedbackExample

LABELS = ("no", "yes")


class ChurnJob:
    task: ClassVar[str] = "churn"
    config_type: ClassVar[type[JobConfig]] = ChurnConfig
    primary_metric: ClassVar[str] = "roc_auc"
    description: ClassVar[str] = "Telco churn: calibrated logistic regression or boosted trees"

    def train(
        self,
        config: Any,
        ctx: JobContext,
        workdir: Path,
        feedback: Sequence[FeedbackExample],
    ) -> Trained:
        from models.churn.telco import CATEGORICAL, NUMERIC, TARGET, target, train_telco
        from models.pyfunc import CHURN_FILE, ChurnPyfunc

        if config.data is None:
            from training.datasets import load_telco

            df = load_telco(ctx.datasets_dir)
        else:
            df = read_table(config.data)
        df = df.iloc[thin(len(df), config.max_rows)].reset_index(drop=True)
        y = target(df)  # validates the target column
        split = frozen_split(
            row_keys(df, list(df.columns)), [LABELS[v] for v in y], seed=config.seed,
            test_fraction=config.test_fraction,
        )  # fmt: skip
        pool, test = df.iloc[split.train].copy(), df.iloc[split.test].reset_index(drop=True)
        if config.shuffle_labels:
            pool[TARGET] = shuffled(pool[TARGET].tolist(), config.seed)
        ctx.progress(f"cross-validating {', '.join(config.candidates)} on {len(pool)} rows")
        model, cv = train_telco(
            pool, seed=config.seed, n_splits=config.n_splits, candidates=config.candidates
        )
        folder = workdir / "model"
        model.save(folder / CHURN_FILE)
        example = test.loc[:, [*NUMERIC, *CATEGORICAL]].head(2)
        signature = _signature(example, model.predict_proba(example))
        return Trained(
            folder=folder,
            test_set=test,
            evaluation=self.evaluate(folder, test, ctx),
            data_sha256=frame_sha256(df),
            rows={"train": len(pool), "validation": len(pool), "test": len(test)},
            validation={
                "cv_roc_auc_mean": cv.roc_auc_mean,
                "cv_roc_auc_std": cv.roc_auc_std,
                "cv_brier_mean": cv.brier_mean,
                **{f"cv_roc_auc_{k}": v for k, v in cv.candidate_roc_auc.items()},
            },
            params={"candidate": cv.candidate, "n_splits": cv.n_splits},
            python_model=ChurnPyfunc(),
            signature=signature,
            input_example=example,
            uses_encoder=False,
            notes=[f"validation: {cv.n_splits}-fold stratified cross-validation on the pool"],
        )

    def evaluate(self, folder: Path, test_set: pd.DataFrame, ctx: JobContext) -> Evaluation:
        from sklearn.metrics import brier_score_loss, roc_auc_score

        from models.churn.telco import TelcoChurnModel, target
        from models.pyfunc import CHURN_FILE

        model = TelcoChurnModel.load(folder / CHURN_FILE)
        p = model.predict_proba(test_set)
        y = target(test_set)
        result = classification_evaluation([LABELS[v] for v in y], np.c_[1.0 - p, p], LABELS)
        result.metrics["roc_auc"] = float(roc_auc_score(y, p))
        result.metrics["brier"] = float(brier_score_loss(y, p))
        return result


def _signature(example: pd.DataFrame, output: np.ndarray[Any, Any]) -> Any:
    from mlflow.models import infer_signature

    return infer_signature(example, pd.DataFrame({"churn_probability": output}))
