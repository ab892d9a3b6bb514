"""Which models a scoring run uses, resolved once by the driver, loaded once per actor.

The champion of each head task comes from the model registry (`models.registry`) when one
is registered; a task without a champion (or an installation without a registry) uses the
bundle's head, reported as `bundle/<heads_key>`. The driver resolves the versions before any
actor starts, so every row of one run is scored by the same models even if a promotion
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
    if not tasks:
        return {}, {}
    try:
        from models.registry import ModelRegistry
    except ImportError:  # an installation without the model registry: the bundle's heads
        return {}, {}
    registry = ModelRegistry.from_settings(settings)
    champions = registry.champions(tasks)
    folders = {task: Path(registry.fetch(ref)) for task, ref in champions.items()}
    return folders, {task: str(ref.label) for task, ref in champions.items()}


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
    """The bundle with the registered heads in place of its own; urgency reads the sentiment
    head it was trained with, so it is rebuilt on whichever sentiment head is in use."""
    from models.heads import CalibratedHead, EncoderMismatchError, UrgencyModel

    def head(task: str, own: CalibratedHead | None) -> CalibratedHead | None:
        folder = folders.get(task)
        if folder is None:
            return own
        try:
            return CalibratedHead.load(folder, bundle.encoder)
        except (OSError, ValueError, EncoderMismatchError) as exc:
            raise ModelsUnavailableError(f"the {task} champion cannot be loaded: {exc}") from exc

    intent = head("intent", bundle.intent)
    sentiment = head("sentiment", bundle.sentiment)
    urgency_head = head("urgency", bundle.urgency.head if bundle.urgency else None)
    if sentiment is None or urgency_head is None:
        return dataclasses.replace(bundle, intent=intent)
    try:
        urgency = UrgencyModel(urgency_head, sentiment)
    except ValueError as exc:
        raise ModelsUnavailableError(
            f"the urgency head does not read the sentiment head in use: {exc}"
        ) from exc
    return dataclasses.replace(bundle, intent=intent, sentiment=sentiment, urgency=urgency)
