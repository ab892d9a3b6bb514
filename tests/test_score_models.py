"""Which heads a scoring run uses: the registry's champions where registered, the bundle's
heads (reported as `bundle/<heads key>`) for the other tasks."""

from __future__ import annotations

import shutil
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from models.analyzer import Analyzer
from models.bundle import heads_dir_for
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
    """A `models.registry` whose champions are `folders` (task → saved head), as the
    registry's contract describes it."""

    class Registry:
        @classmethod
        def from_settings(cls, settings: Settings) -> Registry:
            return cls()

        def champions(self, tasks: Any) -> dict[str, FakeRef]:
            return {t: FakeRef(t, "3") for t in tasks if t in folders}

        def fetch(self, ref: FakeRef) -> Path:
            return folders[ref.task]

    module = types.ModuleType("models.registry")
    module.ModelRegistry = Registry  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "models.registry", module)


def test_tasks_are_parsed_in_their_usual_order() -> None:
    assert parse_tasks("entities, intent") == ("intent", "entities")
    assert parse_tasks(None) == TASKS
    with pytest.raises(ValueError, match="unknown task"):
        parse_tasks("intent,mood")


def test_registered_champions_replace_the_bundle_heads_task_by_task(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_cache: Path, analyzer: Analyzer
) -> None:
    registered = tmp_path / "registry" / "relaydesk-intent" / "3"
    shutil.copytree(heads_dir_for(models_cache, analyzer.encoder) / "intent", registered)
    fake_registry(monkeypatch, {"intent": registered})
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET)

    choice = resolve_models(settings, ("intent", "sentiment", "language"), models_cache)
    assert choice.versions["intent"] == "relaydesk-intent/3"
    assert choice.versions["sentiment"] == f"bundle/{analyzer.bundle.heads_key}"
    assert "urgency" not in choice.versions
    assert choice.registered == {"intent": registered}
    loaded = load_analyzer(choice)
    assert loaded.bundle.intent is not None
    assert loaded.bundle.intent.fingerprint() == analyzer.bundle.versions()["intent"]


def test_a_champion_that_cannot_be_loaded_is_refused_before_scoring(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_cache: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    fake_registry(monkeypatch, {"sentiment": broken})
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET)
    with pytest.raises(ModelsUnavailableError, match="sentiment champion cannot be loaded"):
        resolve_models(settings, ("sentiment",), models_cache)


def test_without_head_tasks_nothing_is_encoded(tmp_path: Path, models_cache: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET)
    choice = resolve_models(settings, ("language", "entities"), models_cache)
    assert choice.versions == {}
    loaded = load_analyzer(choice)
    from models.service import AnalyzeRequest

    prepared = loaded.prepare([AnalyzeRequest("Where is order 4411?")])
    assert loaded.texts_to_encode(prepared) == []
