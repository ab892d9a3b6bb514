"""Which heads a scoring run uses: the registry's champions where registered, the bundle's
heads (reported as `bundle/<heads key>`) for the other tasks."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from models.analyzer import Analyzer
from models.bundle import heads_dir_for
from models.registry import URGENCY_SENTIMENT, ModelRegistry
from pipelines.scoring.models import (
    TASKS,
    ModelsUnavailableError,
    load_analyzer,
    parse_tasks,
    resolve_models,
)
from tests.factories import JWT_SECRET


@dataclass(frozen=True)
class FakeRef:
    task: str
    version: str

    @property
    def label(self) -> str:
        return f"relaydesk-{self.task}/{self.version}"


def fake_registry(monkeypatch: pytest.MonkeyPatch, folders: dict[str, Path]) -> None:
    """The registry's champions are `folders` (task → fetched folder); nothing else of
    MLflow is involved."""

    class Registry:
        def champions(self, tasks: Any) -> dict[str, FakeRef]:
            return {t: FakeRef(t, "3") for t in tasks if t in folders}

        def fetch(self, ref: FakeRef) -> Path:
            return folders[ref.task]

    monkeypatch.setattr(ModelRegistry, "from_settings", classmethod(lambda cls, s: Registry()))


def settings_with_store(tmp_path: Path) -> Settings:
    # a configured tracking URI: the registry is asked (the fake answers)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET, mlflow_tracking_uri=uri)


def test_tasks_are_parsed_in_their_usual_order() -> None:
    assert parse_tasks("entities, intent") == ("intent", "entities")
    assert parse_tasks(None) == TASKS
    with pytest.raises(ValueError, match="unknown task"):
        parse_tasks("intent,mood")


def test_registered_champions_replace_the_bundle_heads_task_by_task(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_cache: Path, analyzer: Analyzer
) -> None:
    heads = heads_dir_for(models_cache, analyzer.encoder)
    intent = shutil.copytree(heads / "intent", tmp_path / "registry" / "intent")
    # a registered urgency head keeps the sentiment head it was trained on in its folder
    urgency = shutil.copytree(heads / "urgency", tmp_path / "registry" / "urgency")
    shutil.copytree(heads / "sentiment", urgency / URGENCY_SENTIMENT)
    fake_registry(monkeypatch, {"intent": intent, "urgency": urgency})

    tasks = ("intent", "sentiment", "urgency", "language")
    choice = resolve_models(settings_with_store(tmp_path), tasks, models_cache)
    assert choice.versions == {
        "intent": "relaydesk-intent/3",
        "sentiment": f"bundle/{analyzer.bundle.heads_key}",
        "urgency": "relaydesk-urgency/3",
    }
    assert choice.registered == {"intent": intent, "urgency": urgency}
    loaded = load_analyzer(choice)
    assert loaded.bundle.intent is not None
    assert loaded.bundle.urgency is not None
    assert loaded.bundle.intent is not analyzer.bundle.intent
    assert loaded.bundle.intent.fingerprint() == analyzer.bundle.versions()["intent"]
    assert loaded.bundle.urgency.head.fingerprint() == analyzer.bundle.versions()["urgency"]


def test_without_a_store_the_bundle_heads_are_used_and_no_store_is_created(
    tmp_path: Path, models_cache: Path, analyzer: Analyzer
) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET)
    choice = resolve_models(settings, ("intent",), models_cache)
    assert choice.versions == {"intent": f"bundle/{analyzer.bundle.heads_key}"}
    assert not (tmp_path / "mlflow").exists()


def test_a_champion_that_cannot_be_loaded_is_refused_before_scoring(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_cache: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    fake_registry(monkeypatch, {"sentiment": broken})
    with pytest.raises(ModelsUnavailableError, match="sentiment champion cannot be loaded"):
        resolve_models(settings_with_store(tmp_path), ("sentiment",), models_cache)


def test_without_head_tasks_nothing_is_encoded(tmp_path: Path, models_cache: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET)
    choice = resolve_models(settings, ("language", "entities"), models_cache)
    assert choice.versions == {}
    loaded = load_analyzer(choice)
    from models.service import AnalyzeRequest

    prepared = loaded.prepare([AnalyzeRequest("Where is order 4411?")])
    assert loaded.texts_to_encode(prepared) == []
