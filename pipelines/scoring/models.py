"""Which models a scoring run uses, resolved once by the driver, loaded once per actor.

The champion of each head task comes from the model registry (`models.registry`; its
folder fetched once into `<models_dir>/registry/`); a task without a champion uses the
bundle's head, reported as `bundle/<heads_key>`. The driver resolves the versions before
any actor starts, so every row of one run is scored by the same models even if a promotion
happens meanwhile."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import AiSettings, Settings
from models.analyzer import Analyzer
from models.bundle import ModelBundle, load_bundle

logger = logging.getLogger(__name__)

HEAD_TASKS = ("intent", "sentiment", "urgency")
TASKS = (*HEAD_TASKS, "language", "entities")


class ModelsUnavailableError(RuntimeError):
    """The models a run asked for cannot be loaded (not built, no heads for the encoder)."""


@dataclass(frozen=True)
class ModelChoice:
    """What every scoring actor loads: the encoder named by `ai`, from `models_dir`, and
    per head task either a registered champion's folder (`registered`) or the bundle's."""

    models_dir: Path
    ai: AiSettings
    tasks: tuple[str, ...]
    versions: dict[str, str]  # head task → "relaydesk-intent/3" or "bundle/heads-…"
    registered: dict[str, Path] = field(default_factory=dict)


def parse_tasks(value: str | None) -> tuple[str, ...]:
    """`intent,sentiment` → the tasks in their usual order; None or "" → all of them."""
    if not value:
        return TASKS
    asked = [t.strip() for t in value.split(",") if t.strip()]
    unknown = sorted(set(asked) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    return tuple(t for t in TASKS if t in asked)


def resolve_models(
    settings: Settings, tasks: tuple[str, ...], models_dir: Path | None = None
) -> ModelChoice:
    """Build what is missing (once, here, not in every actor) and pick each head's version."""
    folder = Path(models_dir or settings.models_dir)
    bundle = load_bundle(folder, settings.ai, build_if_missing=True)
    heads = [t for t in tasks if t in HEAD_TASKS]
    if heads and bundle.unavailable:
        raise ModelsUnavailableError(bundle.unavailable)
    registered, versions = _champions(settings, heads)
    if registered:
        _with_registered(bundle, registered)  # refuse here, not in every actor
    for task in heads:
        versions.setdefault(task, f"bundle/{bundle.heads_key}")
    return ModelChoice(folder, settings.ai, tasks, versions, registered)


def _champions(settings: Settings, tasks: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """Fetched folders and labels of the registered champions among `tasks`."""
    from models.registry import ModelRegistry

    if not tasks or not _store_exists(settings):
        return {}, {}
    registry = ModelRegistry.from_settings(settings)
    champions = registry.champions(tasks)
    folders = {task: registry.fetch(ref) for task, ref in champions.items()}
    return folders, {task: ref.label for task, ref in champions.items()}


def _store_exists(settings: Settings) -> bool:
    """False when the embedded MLflow store was never created: nothing is registered, and
    opening it would create it (seconds of schema migrations) only to find that out."""
    if settings.mlflow.tracking_uri:
        return True
    return (settings.data_dir / "mlflow" / "mlflow.db").is_file()


def load_analyzer(choice: ModelChoice, threads: int = 1) -> Analyzer:
    """The analyzer an actor scores with: `threads` encoder threads, the chosen heads; a run
    without head tasks gets no heads, so nothing is encoded."""
    started = time.perf_counter()
    ai = choice.ai.model_copy(update={"encoder_threads": threads})
    bundle = load_bundle(choice.models_dir, ai, build_if_missing=False)
    if not any(t in HEAD_TASKS for t in choice.tasks):
        bundle = dataclasses.replace(
            bundle, intent=None, sentiment=None, urgency=None, unavailable="not requested"
        )
    elif choice.registered:
        bundle = _with_registered(bundle, choice.registered)
    analyzer = Analyzer(bundle, ai)
    logger.info("scoring models loaded in %.1f ms", (time.perf_counter() - started) * 1000)
    return analyzer


def _with_registered(bundle: ModelBundle, folders: dict[str, Path]) -> ModelBundle:
    """The bundle with the registered heads in place of its own. A registered urgency head
    comes with the sentiment head it was trained on (`models.registry.load_head`)."""
    from models.heads import CalibratedHead, EncoderMismatchError, SentimentModel, UrgencyModel
    from models.registry import load_head

    loaded: dict[str, CalibratedHead | SentimentModel | UrgencyModel] = {}
    for task, folder in folders.items():
        try:
            loaded[task] = load_head(task, folder, bundle.encoder)
        except (OSError, ValueError, EncoderMismatchError) as exc:
            raise ModelsUnavailableError(f"the {task} champion cannot be loaded: {exc}") from exc
    intent, sentiment, urgency = (
        loaded.get("intent"),
        loaded.get("sentiment"),
        loaded.get("urgency"),
    )
    return dataclasses.replace(
        bundle,
        intent=intent if isinstance(intent, CalibratedHead) else bundle.intent,
        sentiment=sentiment if isinstance(sentiment, SentimentModel) else bundle.sentiment,
        urgency=urgency if isinstance(urgency, UrgencyModel) else bundle.urgency,
    )
