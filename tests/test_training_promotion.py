"""The gate's rules, promote and rollback moving aliases, and every decision recorded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.settings import Settings
from tests.training_support import MLFLOW_WARNINGS, training_settings

pytestmark = pytest.mark.filterwarnings(MLFLOW_WARNINGS)


def test_compare_checks_the_primary_metric_then_calibration() -> None:
    from training.jobs import GateConfig
    from training.promotion import compare

    gate = GateConfig(max_ece_increase=0.02)
    champion = {"macro_f1": 0.80, "ece": 0.05}
    ok, why = compare("macro_f1", {"macro_f1": 0.79, "ece": 0.04}, champion, gate)
    assert not ok
    assert "worse than the champion's 0.8000" in why
    ok, why = compare("macro_f1", {"macro_f1": 0.82, "ece": 0.08}, champion, gate)
    assert not ok
    assert "ECE 0.0800 exceeds" in why
    assert compare("macro_f1", {"macro_f1": 0.80, "ece": 0.06}, champion, gate)[0]
    strict = GateConfig(max_ece=0.055)
    assert not compare("macro_f1", {"macro_f1": 0.9, "ece": 0.06}, champion, strict)[0]
    # a tolerance lets an equal-within-noise candidate through
    loose = GateConfig(metric_tolerance=0.02)
    assert compare("macro_f1", {"macro_f1": 0.79, "ece": 0.05}, champion, loose)[0]
    # recall@3 has no calibration to check
    assert compare("recall_at_3", {"recall_at_3": 0.9}, {"recall_at_3": 0.9}, gate)[0]


def model_events(settings: Settings) -> list[tuple[str, dict[str, object]]]:
    from sqlalchemy import select

    from core.db.engine import create_engine, create_sessionmaker
    from core.events.store import EventRecord

    async def read() -> list[tuple[str, dict[str, object]]]:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                rows = await session.execute(
                    select(EventRecord.event_type, EventRecord.payload)
                    .where(EventRecord.aggregate_type == "model")
                    .order_by(EventRecord.aggregate_version)
                )
                return [(t, dict(p)) for t, p in rows.all()]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_promote_and_rollback_move_aliases_and_record_events(
    tmp_path: Path, models_cache: Path, datasets_dir: Path
) -> None:
    from models.registry import ModelRegistry
    from training.jobs import ChurnConfig, run_training
    from training.jobs.context import JobContext
    from training.promotion import PromotionError, promote, rollback

    settings = training_settings(tmp_path, models_cache, migrate=True)
    fast = {
        "max_rows": 600,
        "n_splits": 3,
        "candidates": ["logistic"],
        "datasets_dir": datasets_dir,
    }
    run_training("churn", ChurnConfig(**fast), settings)
    worse = run_training("churn", ChurnConfig(**fast, shuffle_labels=True), settings)
    assert worse.decision is not None
    assert worse.decision.outcome == "challenger"
    assert "roc_auc" in worse.decision.reason

    registry = ModelRegistry.from_settings(settings)
    ctx = JobContext(settings, encoder_kind="e5-onnx")
    with pytest.raises(PromotionError, match="no previous champion"):
        rollback(settings, registry, "churn")
    # through the gate it is refused again, with the reason
    again = promote(ctx, "churn", "2", force=False)
    assert again.outcome == "challenger"
    assert "worse than the champion's" in again.reason
    # by hand it goes through
    forced = promote(ctx, "churn", "2", force=True)
    assert forced.outcome == "champion"
    assert forced.forced
    assert registry.champion("churn").version == "2"  # type: ignore[union-attr]
    assert registry.get("churn", "previous-champion").version == "1"  # type: ignore[union-attr]
    assert registry.get("churn", "challenger") is None

    restored = rollback(settings, registry, "churn")
    assert restored.outcome == "rolled_back"
    assert restored.version == "1"
    assert registry.champion("churn").version == "1"  # type: ignore[union-attr]
    assert registry.get("churn", "previous-champion") is None
    with pytest.raises(PromotionError):
        promote(ctx, "churn", "9", force=True)

    events = model_events(settings)
    assert [e for e, _ in events] == [
        "model.promoted",  # the first run: no champion yet
        "model.rejected",  # the shuffled-label run
        "model.rejected",  # promote without --force
        "model.promoted",  # promote --force
        "model.rolled_back",
    ]
    assert events[3][1]["forced"] is True
    assert events[4][1]["version"] == "1"
    assert events[4][1]["champion_before"] == "2"

    # every decision is also an MLflow run of its own
    from mlflow import MlflowClient

    client = MlflowClient(registry.tracking_uri)
    experiment = client.get_experiment_by_name("relaydesk-model-decisions")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["relaydesk.outcome"] for r in runs) == sorted(
        ["champion", "challenger", "challenger", "champion", "rolled_back"]
    )


def invoke(args: list[str], data_dir: Path) -> tuple[int, str]:
    from core.cli.main import app
    from core.settings import get_settings

    get_settings.cache_clear()
    env = {"RELAYDESK_DATA_DIR": str(data_dir)}
    try:
        result = CliRunner().invoke(app, args, env=env)
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_train_cli_with_a_config_file_and_models_list(
    tmp_path: Path, models_cache: Path, datasets_dir: Path
) -> None:
    training_settings(tmp_path, models_cache)
    config = tmp_path / "churn.yaml"
    config.write_text(
        "max_rows: 600\nn_splits: 3\ncandidates: [logistic]\n"
        f"datasets_dir: {json.dumps(str(datasets_dir))}\ngate:\n  max_ece_increase: 0.01\n"
    )
    code, out = invoke(["train", "churn", "--config", str(config)], tmp_path)
    assert code == 0, out
    assert "registered relaydesk-churn/1" in out
    assert "no champion yet" in out
    code, out = invoke(["models", "list"], tmp_path)
    assert code == 0, out
    assert "relaydesk-churn: 1 version(s)" in out
    assert "1 [champion]" in out
    assert "roc_auc" in out

    bad = tmp_path / "bad.yaml"
    bad.write_text("n_splits: 1\nunknown_knob: 3\n")
    code, out = invoke(["train", "churn", "--config", str(bad)], tmp_path)
    assert code == 2
    assert "n_splits" in out
    assert "unknown_knob" in out
    code, out = invoke(["train", "nonsense"], tmp_path)
    assert code == 2
    assert "unknown task" in out


def test_mlflow_ui_runs_on_the_configured_store(tmp_path: Path) -> None:
    from core.settings import get_settings
    from training.cli import mlflow_ui_command_line

    get_settings.cache_clear()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RELAYDESK_DATA_DIR", str(tmp_path))
            command, env = mlflow_ui_command_line(5055, "127.0.0.1")
    finally:
        get_settings.cache_clear()
    assert command[1:4] == ["-m", "mlflow", "ui"]
    store = command[command.index("--backend-store-uri") + 1]
    assert store == f"sqlite:///{(tmp_path / 'mlflow' / 'mlflow.db').resolve()}"
    root = command[command.index("--default-artifact-root") + 1]
    assert root == (tmp_path / "mlflow" / "artifacts").resolve().as_uri()
    assert command[command.index("--port") + 1] == "5055"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
