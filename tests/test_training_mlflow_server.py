"""The production MLflow setting: `RELAYDESK_MLFLOW_TRACKING_URI` names a tracking server (a
real `mlflow server` on loopback here), and training, registration, promotion and the
registry's download all go through it, artifacts included."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_serve import free_port
from tests.training_support import MLFLOW_WARNINGS, training_settings

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(MLFLOW_WARNINGS)]

START_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_training_registers_and_serves_through_a_tracking_server(
    mlflow_server: str, tmp_path: Path, models_cache: Path, datasets_dir: Path
) -> None:
    from core.settings import MlflowSettings
    from models.registry import ModelRegistry
    from training.jobs import ChurnConfig, run_training

    settings = training_settings(tmp_path, models_cache).model_copy(
        update={"mlflow": MlflowSettings(tracking_uri=mlflow_server)}
    )
    assert settings.mlflow_uri == mlflow_server
    config = ChurnConfig(
        max_rows=600, n_splits=3, candidates=["logistic"], datasets_dir=datasets_dir
    )
    outcome = run_training("churn", config, settings)
    assert outcome.decision is not None
    assert outcome.decision.outcome == "champion"

    registry = ModelRegistry.from_settings(settings)
    champion = registry.champion("churn")
    assert champion is not None
    assert champion.version == outcome.ref.version
    assert 0.6 < champion.metrics["test_roc_auc"] <= 1.0
    # the artifacts went to the server, not to the data dir, and come back from it
    assert not (tmp_path / "mlflow").exists()
    folder = registry.fetch(champion)
    assert folder.is_dir()
    assert any(folder.iterdir())
