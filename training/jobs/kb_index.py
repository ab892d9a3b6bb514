"""The knowledge index (`models/retrieval`): the shipped help centre (or `--data`, a JSONL of
articles: id, title, body, language) chunked and indexed with e5 vectors and BM25 exactly as
the service does, scored by recall@k and MRR of the hybrid search on the query set the model
card uses (`models/data/kb_queries.jsonl`): its `dev` split is the validation, its `test` split
the frozen test set. Nothing is fitted: the job records the parameters and the articles, so a
version is reproducible and comparable."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from training.jobs.base import Evaluation, Trained
from training.jobs.config import JobConfig, KbIndexConfig
from training.jobs.context import JobContext
from training.jobs.data import DataError

if TYPE_CHECKING:
    from models.retrieval import RetrievalParams
    from training.feedback import FeedbackExample


def retrieval_params(config: KbIndexConfig) -> RetrievalParams:
    from models.retrieval import ChunkingParams, RetrievalParams

    params = RetrievalParams()
    if config.lexical_weight is not None:
        params = dataclasses.replace(params, lexical_weight=config.lexical_weight)
    if config.max_chars is not None or config.overlap_chars is not None:
        chunking = ChunkingParams(
            config.max_chars or params.chunking.max_chars,
            config.overlap_chars
            if config.overlap_chars is not None
            else params.chunking.overlap_chars,
        )
        params = dataclasses.replace(params, chunking=chunking)
    return params


def _figures(result: dict[str, Any]) -> dict[str, float]:
    overall = result["hybrid"]["overall"]
    out = {f"recall_at_{k}": float(overall[f"recall@{k}"]) for k in (1, 3, 5)}
    out["mrr"] = float(overall["mrr"])
    out["vector_recall_at_3"] = float(result["vector"]["overall"]["recall@3"])
    out["lexical_recall_at_3"] = float(result["lexical"]["overall"]["recall@3"])
    return out


class KbIndexJob:
    task: ClassVar[str] = "kb-index"
    config_type: ClassVar[type[JobConfig]] = KbIndexConfig
    primary_metric: ClassVar[str] = "recall_at_3"
    description: ClassVar[str] = "hybrid knowledge-base index (e5 vectors + BM25)"

    def train(
        self,
        config: Any,
        ctx: JobContext,
        workdir: Path,
        feedback: Sequence[FeedbackExample],
    ) -> Trained:
        from models.pyfunc import (
            KB_ARTICLES_FILE,
            KB_PARAMS_FILE,
            KbIndexPyfunc,
            write_retrieval_params,
        )
        from models.retrieval.evaluate import (
            KB_ARTICLES,
            KB_QUERIES,
            evaluate_retrieval,
            load_articles,
        )

        articles = Path(config.data or KB_ARTICLES)
        queries_path = Path(config.queries or KB_QUERIES)
        try:
            load_articles(articles)
            queries = pd.read_json(queries_path, lines=True)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"cannot read the articles or queries: {exc}") from exc
        test = queries.loc[queries["split"] == "test"].reset_index(drop=True)
        dev = queries.loc[queries["split"] == "dev"]
        if test.empty:
            raise DataError(f"{queries_path}: no query with split `test`")
        folder = workdir / "model"
        folder.mkdir(parents=True)
        shutil.copyfile(articles, folder / KB_ARTICLES_FILE)
        params = retrieval_params(config)
        write_retrieval_params(params, folder / KB_PARAMS_FILE)
        validation: dict[str, float] = {}
        if not dev.empty:
            ctx.progress(f"scoring {len(dev)} dev queries")
            result = evaluate_retrieval(
                ctx.encoder, split="dev", params=params, articles_path=articles,
                queries_path=queries_path, cache_dir=ctx.models_dir,
            )  # fmt: skip
            validation = _figures(result)
        ctx.progress(f"scoring {len(test)} test queries")
        evaluation = self.evaluate(folder, test, ctx)
        digest = hashlib.sha256(articles.read_bytes() + b"\0" + queries_path.read_bytes())
        return Trained(
            folder=folder,
            test_set=test,
            evaluation=evaluation,
            data_sha256=digest.hexdigest(),
            rows={
                "articles": int(evaluation.details["articles"]),
                "chunks": int(evaluation.details["chunks"]),
                "validation": len(dev),
                "test": len(test),
            },
            validation=validation,
            params=json.loads((folder / KB_PARAMS_FILE).read_text()),
            python_model=KbIndexPyfunc(),
            signature=kb_signature(),
            input_example=pd.DataFrame({"text": test["query"].head(2).tolist()}),
            notes=["validation: the dev split of the query set; nothing is fitted"],
        )

    def evaluate(self, folder: Path, test_set: pd.DataFrame, ctx: JobContext) -> Evaluation:
        from models.pyfunc import KB_ARTICLES_FILE, KB_PARAMS_FILE, read_retrieval_params
        from models.retrieval.evaluate import evaluate_retrieval

        with tempfile.TemporaryDirectory(prefix="relaydesk-kb-") as tmp:
            queries = Path(tmp) / "queries.jsonl"
            rows = test_set.assign(split="test")
            rows.to_json(queries, orient="records", lines=True, force_ascii=False)
            result = evaluate_retrieval(
                ctx.encoder,
                split="test",
                params=read_retrieval_params(folder / KB_PARAMS_FILE),
                articles_path=folder / KB_ARTICLES_FILE,
                queries_path=queries,
                cache_dir=ctx.models_dir,
            )
        details = {"articles": result["articles"], "chunks": result["chunks"]}
        return Evaluation(_figures(result), details=details)


def kb_signature() -> Any:
    """Input: a `text` column (the question). Output: `articles`, a JSON list of slugs."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "text")]), outputs=Schema([ColSpec("string", "articles")])
    )
