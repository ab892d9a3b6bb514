"""Each training job end to end on a small slice, with a throwaway MLflow store."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training_support import MLFLOW_WARNINGS, training_settings

pytestmark = pytest.mark.filterwarnings(MLFLOW_WARNINGS)


def artifacts_of(run_id: str, uri: str) -> set[str]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    out: set[str] = set()
    for item in client.list_artifacts(run_id):
        if item.is_dir:
            out |= {f.path for f in client.list_artifacts(run_id, item.path)}
        else:
            out.add(item.path)
    return out


def test_frozen_split_is_stratified_deterministic_and_stable() -> None:
    from training.jobs.data import frozen_split

    keys = [f"text {i}" for i in range(200)]
    strata = ["a" if i % 4 else "b" for i in range(200)]
    first = frozen_split(keys, strata, seed=3, test_fraction=0.2)
    again = frozen_split(keys, strata, seed=3, test_fraction=0.2)
    assert np.array_equal(first.test, again.test)
    test_strata = [strata[i] for i in first.test]
    assert test_strata.count("b") == 10
    assert test_strata.count("a") == 30
    # more rows move few old ones: a row's rank depends on its own text only
    grown = frozen_split([*keys, *(f"new {i}" for i in range(20))], [*strata, *["a"] * 20],
                         seed=3, test_fraction=0.2)  # fmt: skip
    kept = set(first.test) & set(grown.test)
    assert len(kept) >= 0.9 * len(first.test)
    other_seed = frozen_split(keys, strata, seed=4, test_fraction=0.2)
    assert set(other_seed.test) != set(first.test)
    # the same text never straddles the split
    dup = frozen_split(["x", "x", "y", "z", "w"], ["a"] * 5, seed=0, test_fraction=0.4)
    assert {0, 1} <= set(dup.test) or not ({0, 1} & set(dup.test))


def test_intent_job_logs_registers_and_becomes_champion(
    tmp_path: Path, models_cache: Path, datasets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from models.heads import CalibratedHead
    from models.registry import ModelRegistry, load_head
    from training.jobs import IntentConfig, run_training

    pushed: list[dict[str, str]] = []
    swap = types.ModuleType("serve.swap")
    swap.push_model_versions = lambda settings, heads, shadow: pushed.append(heads)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "serve.swap", swap)
    settings = training_settings(tmp_path, models_cache)
    config = IntentConfig(max_rows=400, datasets_dir=datasets_dir)
    outcome = run_training("intent", config, settings)

    assert outcome.ref.label == "relaydesk-intent/1"
    assert outcome.decision is not None
    assert outcome.decision.outcome == "champion"
    assert "no champion yet" in outcome.decision.reason
    assert pushed == [{"intent": "1"}]
    registry = ModelRegistry.from_settings(settings)
    champion = registry.champion("intent")
    assert champion is not None
    assert champion.version == "1"
    assert champion.encoder
    assert champion.encoder.startswith("multilingual-e5-small@")
    m = champion.metrics
    assert 0.3 < m["test_macro_f1"] <= 1.0
    assert 0.0 <= m["test_ece"] < 0.5
    assert "test_precision.return_refund" in m
    assert "test_recall.return_refund" in m
    assert m["rows_test"] == outcome.rows["test"] > 0
    run = mlflow.MlflowClient(registry.tracking_uri).get_run(outcome.run_id)
    assert len(run.data.params["data.sha256"]) == 64
    assert {"confusion_matrix.png", "model_card.md", "test_set/test_set.jsonl"} <= artifacts_of(
        outcome.run_id, registry.tracking_uri
    )
    # the fetched folder is what CalibratedHead.save wrote, cached under the models folder
    folder = registry.fetch(champion)
    assert (
        folder
        == settings.models_dir / "registry" / "relaydesk-intent" / f"1-{champion.run_id[:12]}"
    )
    from models.encoder import load_encoder

    encoder = load_encoder("e5-onnx", settings.models_dir)
    head = load_head("intent", folder, encoder)
    assert isinstance(head, CalibratedHead)
    assert head.task == "intent"
    # and MLflow users can load it by URI
    model = mlflow.pyfunc.load_model("models:/relaydesk-intent@champion")
    answer = model.predict(pd.DataFrame({"text": ["I want my money back for order 1234"]}))
    assert answer["label"].iloc[0] in head.labels

    # the same data and seed give the same frozen test set; shuffled labels lose the gate
    degraded = run_training("intent", IntentConfig(max_rows=400, shuffle_labels=True), settings)
    assert degraded.ref.tags is not None
    assert champion.tags is not None
    assert (
        degraded.ref.tags["relaydesk.test_set_sha256"] == champion.tags["relaydesk.test_set_sha256"]
    )
    decision = degraded.decision
    assert decision is not None
    assert decision.outcome == "challenger"
    assert "worse than the champion's" in decision.reason
    assert "same" in decision.reason
    assert registry.champion("intent").version == "1"  # type: ignore[union-attr]
    assert registry.get("intent", "challenger").version == "2"  # type: ignore[union-attr]
    assert pushed[-1] == {"intent": "1"}
    tags = registry.get("intent", "2").tags  # type: ignore[union-attr]
    assert tags is not None
    assert tags["relaydesk.gate.outcome"] == "challenger"


def test_include_feedback_adds_to_the_training_rows_only(
    tmp_path: Path, models_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid
    from datetime import UTC, datetime

    from training.jobs import FeedbackUnavailableError, IntentConfig, run_training
    from training.jobs.tracking import load_test_set

    settings = training_settings(tmp_path, models_cache)
    base = run_training("intent", IntentConfig(max_rows=400, promote=False), settings)
    test_texts = load_test_set(base.run_id, settings.mlflow_uri)["text"].tolist()

    monkeypatch.setitem(sys.modules, "training.feedback", None)  # not installed
    with pytest.raises(FeedbackUnavailableError, match=r"training/feedback\.py"):
        run_training("intent", IntentConfig(max_rows=400, include_feedback=True), settings)

    def example(text: str, label: str) -> object:
        return types.SimpleNamespace(
            task="intent", text=text, label=label, tenant_id=uuid.uuid4(), language="en",
            model_version="relaydesk-intent/1", created_at=datetime.now(UTC),
        )  # fmt: skip

    corrections = [example(f"please cancel subscription number {i}", "cancel") for i in range(5)]
    corrections.append(example(test_texts[0], "other"))  # a test row: must stay out
    stub = types.ModuleType("training.feedback")
    asked: list[str] = []

    def load_feedback_sync(settings: object, task: str, **kw: object) -> list[object]:
        asked.append(task)
        return corrections

    stub.load_feedback_sync = load_feedback_sync  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "training.feedback", stub)
    fed = run_training("intent", IntentConfig(max_rows=400, include_feedback=True, promote=False),
                       settings)  # fmt: skip
    assert asked == ["intent"]
    assert fed.rows["feedback"] == 5
    assert (
        fed.rows["train"] + fed.rows["validation"]
        == base.rows["train"] + base.rows["validation"] + 5
    )
    assert fed.rows["test"] == base.rows["test"]
    assert load_test_set(fed.run_id, settings.mlflow_uri)["text"].tolist() == test_texts


def test_churn_job_reports_roc_auc(tmp_path: Path, models_cache: Path, datasets_dir: Path) -> None:
    from training.jobs import ChurnConfig, run_training

    settings = training_settings(tmp_path, models_cache)
    config = ChurnConfig(
        max_rows=800, n_splits=3, candidates=["logistic"], datasets_dir=datasets_dir
    )
    outcome = run_training("churn", config, settings)
    m = outcome.ref.metrics
    assert 0.7 < m["test_roc_auc"] <= 1.0
    assert 0.6 < m["val_cv_roc_auc_mean"] <= 1.0
    assert "test_ece" in m
    assert "test_macro_f1" in m
    assert outcome.ref.encoder is None
    assert outcome.decision is not None
    assert outcome.decision.outcome == "champion"


def test_category_job_from_a_csv_with_its_own_columns(
    tmp_path: Path, models_cache: Path, datasets_dir: Path
) -> None:
    from training.datasets import load_cfpb
    from training.jobs import CategoryJobConfig, DataError, run_training

    cfpb = load_cfpb("train", datasets_dir).iloc[::25]
    path = tmp_path / "tickets.csv"
    cfpb.rename(columns={"text": "narrative", "product": "queue"}).to_csv(path, index=False)
    settings = training_settings(tmp_path / "store", models_cache)
    config = CategoryJobConfig(
        data=path, text_column="narrative", label_column="queue", slug="acme",
        use_embeddings=False, folds=3,
    )  # fmt: skip
    outcome = run_training("category", config, settings)
    assert outcome.ref.name == "relaydesk-category-acme"
    assert 0.3 < outcome.ref.metrics["test_accuracy"] <= 1.0
    assert outcome.decision is not None
    assert outcome.decision.outcome == "champion"

    bad = CategoryJobConfig(data=path, text_column="body", use_embeddings=False)
    with pytest.raises(DataError, match="missing column"):
        run_training("category", bad, settings)


@pytest.mark.slow
def test_kb_index_job_scores_recall(tmp_path: Path, models_cache: Path) -> None:
    from models.registry import ModelRegistry
    from training.jobs import KbIndexConfig, run_training

    settings = training_settings(tmp_path, models_cache)
    outcome = run_training("kb-index", KbIndexConfig(), settings)
    m = outcome.ref.metrics
    assert 0.5 < m["test_recall_at_3"] <= 1.0
    assert m["test_recall_at_1"] <= m["test_recall_at_3"]
    assert "val_recall_at_3" in m
    folder = ModelRegistry.from_settings(settings).fetch(outcome.ref)
    assert json.loads((folder / "params.json").read_text())["lexical_weight"] == 0.2


@pytest.mark.slow
def test_sentiment_and_urgency_jobs(tmp_path: Path, models_cache: Path, datasets_dir: Path) -> None:
    from models.registry import ModelRegistry
    from training.jobs import SentimentConfig, UrgencyConfig, run_training

    settings = training_settings(tmp_path, models_cache)
    sentiment = run_training(
        "sentiment", SentimentConfig(max_rows=1200, datasets_dir=datasets_dir), settings
    )
    assert 0.3 < sentiment.ref.metrics["test_macro_f1"] <= 1.0
    urgency = run_training(
        "urgency", UrgencyConfig(max_rows=400, datasets_dir=datasets_dir), settings
    )
    assert 0.2 < urgency.ref.metrics["test_macro_f1"] <= 1.0
    registry = ModelRegistry.from_settings(settings)
    folder = registry.fetch(urgency.ref)
    # urgency was trained on the sentiment champion, kept beside it
    assert (folder / "sentiment" / "head.json").is_file()
    info = json.loads((folder / "head.json").read_text())["info"]
    assert info["sentiment_origin"] == sentiment.ref.label


def test_feedback_with_a_tenant_intent_stays_out_of_the_shared_head(
    tmp_path: Path, models_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid
    from datetime import UTC, datetime

    from training.jobs import IntentConfig, run_training

    settings = training_settings(tmp_path, models_cache)

    def example(text: str, label: str) -> object:
        return types.SimpleNamespace(
            task="intent", text=text, label=label, tenant_id=uuid.uuid4(), language="en",
            model_version=None, created_at=datetime.now(UTC),
        )  # fmt: skip

    stub = types.ModuleType("training.feedback")
    stub.load_feedback_sync = lambda settings, task, **kw: [  # type: ignore[attr-defined]
        example("cancel my plan today please", "cancel"),
        example("my warranty card is lost", "warranty_claim"),
    ]
    monkeypatch.setitem(sys.modules, "training.feedback", stub)
    fed = run_training(
        "intent", IntentConfig(max_rows=300, include_feedback=True, promote=False), settings
    )
    assert fed.rows["feedback"] == 1
    assert any("warranty_claim" in note for note in fed.notes)
