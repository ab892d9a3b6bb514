"""The MLflow model registry as RelayDesk sees it: one registered model per task, aliases
for what is served.

Registered names are `relaydesk-<task>` (`relaydesk-intent`, ..., `relaydesk-kb-index`; a
tenant's category model is task `category-<slug>`, name `relaydesk-category-<slug>`). Aliases:
`champion` is served, `challenger` is a candidate that lost the gate or awaits promotion (shadow
mode runs it), `previous-champion` is what `relaydesk models rollback` restores.

The store is `Settings.mlflow_uri`: in the embedded mode a SQLite file under
`<data_dir>/mlflow/` with artifacts under `<data_dir>/mlflow/artifacts` (never `./mlruns`);
in production `RELAYDESK_MLFLOW_TRACKING_URI`, with artifacts wherever that server keeps them.

Every registered version is a pyfunc (`models.pyfunc`) whose `model` artifact is the folder the
task's own code saved (for the heads: exactly what `CalibratedHead.save` wrote). `fetch`
downloads that folder once into `<models_dir>/registry/<name>/<version>-<run id>`."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from models.encoder import Encoder
    from models.heads import CalibratedHead, SentimentModel, UrgencyModel

# Set before mlflow is first imported anywhere through this module.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

logger = logging.getLogger(__name__)

HEAD_TASKS: tuple[str, ...] = ("intent", "sentiment", "urgency")
TASKS: tuple[str, ...] = (*HEAD_TASKS, "category", "churn", "kb-index")
NAME_PREFIX = "relaydesk-"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)
# The pyfunc artifact key (and folder name inside the logged model) of the saved model.
MODEL_ARTIFACT = "model"
# Model-version tags written at registration.
TAG_TASK = "relaydesk.task"
TAG_ENCODER = "relaydesk.encoder"
TAG_TEST_SET = "relaydesk.test_set_sha256"
TAG_PRIMARY = "relaydesk.primary_metric"
# The urgency head's folder carries the sentiment head it was trained on, in this subfolder.
URGENCY_SENTIMENT = "sentiment"


def registered_name(task: str) -> str:
    """`relaydesk-<task>`: `relaydesk-intent`, `relaydesk-category-acme`, ..."""
    return NAME_PREFIX + task


def task_of(name: str) -> str:
    if not name.startswith(NAME_PREFIX):
        raise ValueError(f"{name!r} is not a RelayDesk registered model")
    return name[len(NAME_PREFIX) :]


def check_task(task: str) -> str:
    """The task, or ValueError naming the known ones (`category-<slug>` is accepted)."""
    if task in TASKS or (task.startswith("category-") and len(task) > len("category-")):
        return task
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


@dataclass(frozen=True)
class ModelRef:
    """One registered version of a task's model."""

    task: str
    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    encoder: str | None  # "name@version" the model reads embeddings of (None: none)
    metrics: dict[str, float]
    tags: Mapping[str, str] | None = None

    @property
    def label(self) -> str:
        """`relaydesk-intent/3`: what responses carry as the model version."""
        return f"{self.name}/{self.version}"


def store_locations(settings: Settings) -> tuple[str, str | None]:
    """(tracking URI, artifact root for new experiments; None: the server decides)."""
    if settings.mlflow.tracking_uri:
        return settings.mlflow.tracking_uri, None
    root = (settings.data_dir / "mlflow").resolve()
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    return settings.mlflow_uri, (root / "artifacts").as_uri()


class ModelRegistry:
    """Look up, download and re-alias RelayDesk's registered models."""

    def __init__(self, tracking_uri: str, models_dir: Path, artifact_root: str | None = None):
        self.tracking_uri = tracking_uri
        self.models_dir = Path(models_dir)
        self.artifact_root = artifact_root
        self._client: MlflowClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        uri, root = store_locations(settings)
        return cls(uri, settings.models_dir, root)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.tracking_uri, self.tracking_uri)
        return self._client

    def experiment_id(self, task: str) -> str:
        """The experiment a task's runs go to (`relaydesk-<task>`), created on first use with
        the configured artifact root."""
        name = registered_name(task)
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(self.client.create_experiment(name, artifact_location=self.artifact_root))

    # lookups ------------------------------------------------------------------------

    def get(self, task: str, alias_or_version: str) -> ModelRef | None:
        """The version named by an alias (`champion`) or a number (`3`); None if absent."""
        from mlflow.exceptions import MlflowException

        name = registered_name(task)
        try:
            if alias_or_version.isdigit():
                mv = self.client.get_model_version(name, alias_or_version)
            else:
                mv = self.client.get_model_version_by_alias(name, alias_or_version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return self._ref(task, mv)

    def champion(self, task: str) -> ModelRef | None:
        return self.get(task, CHAMPION)

    def champions(self, tasks: Iterable[str] = HEAD_TASKS) -> dict[str, ModelRef]:
        """Task → its champion, for the tasks that have one."""
        out: dict[str, ModelRef] = {}
        for task in tasks:
            ref = self.champion(task)
            if ref is not None:
                out[task] = ref
        return out

    def versions(self, task: str) -> list[ModelRef]:
        """Every registered version of a task's model, newest first."""
        from mlflow.exceptions import MlflowException

        name = registered_name(task)
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise
        # search results carry no aliases: take them from the registered model
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        refs = [
            replace(self._ref(task, mv), aliases=tuple(sorted(by_version.get(str(mv.version), []))))
            for mv in self.client.search_model_versions(f"name = '{name}'")
        ]
        return sorted(refs, key=lambda r: int(r.version), reverse=True)

    def tasks(self) -> list[str]:
        """Tasks with a registered model in this store."""
        names = [m.name for m in self.client.search_registered_models()]
        return sorted(task_of(n) for n in names if n.startswith(NAME_PREFIX))

    def _ref(self, task: str, mv: ModelVersion) -> ModelRef:
        metrics: dict[str, float] = {}
        if mv.run_id:
            metrics = dict(self.client.get_run(mv.run_id).data.metrics)
        tags = dict(mv.tags or {})
        return ModelRef(
            task=task,
            name=str(mv.name),
            version=str(mv.version),
            run_id=str(mv.run_id or ""),
            aliases=tuple(sorted(mv.aliases or ())),
            encoder=tags.get(TAG_ENCODER) or None,
            metrics=metrics,
            tags=tags,
        )

    # aliases ------------------------------------------------------------------------

    def set_alias(self, task: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(registered_name(task), alias, version)

    def delete_alias(self, task: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_alias(registered_name(task), alias)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise

    def tag_version(self, ref: ModelRef, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(ref.name, ref.version, key, value)

    # artifacts ----------------------------------------------------------------------

    def fetch(self, ref: ModelRef) -> Path:
        """The version's saved model folder, downloaded once into
        `<models_dir>/registry/<name>/<version>-<run id>` (a complete folder appears by
        rename, so concurrent fetchers race harmlessly). The run id is in the name because
        version numbers restart with a new store: version 1 of another store is another model."""
        import mlflow.artifacts

        dest = self.models_dir / "registry" / ref.name / f"{ref.version}-{ref.run_id[:12]}"
        if dest.is_dir():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{ref.version}-", dir=dest.parent))
        try:
            # the version's own artifact location: no `models:/` lookup through the global
            # registry URI, which may point elsewhere in this process
            uri = self.client.get_model_version_download_uri(ref.name, ref.version)
            got = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{uri.rstrip('/')}/artifacts/{MODEL_ARTIFACT}",
                    dst_path=str(staging),
                    tracking_uri=self.tracking_uri,
                )
            )
            folder = got
            if not folder.is_dir():
                raise FileNotFoundError(f"{ref.label} has no `{MODEL_ARTIFACT}` artifact")
            try:
                folder.rename(dest)
            except OSError:
                if not dest.is_dir():  # another fetcher won the race otherwise
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("fetched %s into %s", ref.label, dest)
        return dest


def load_head(
    task: str, folder: Path, encoder: Encoder
) -> CalibratedHead | SentimentModel | UrgencyModel:
    """A fetched head: a `CalibratedHead` (intent), a `SentimentModel` (sentiment) or, for
    urgency, an `UrgencyModel` over the sentiment model it was trained on (kept in its folder).
    Raises `EncoderMismatchError` when `encoder` is not the one it was trained on, and a
    ValueError for a sentiment head saved before the lexicon features (retrain it)."""
    from models.heads import CalibratedHead, SentimentModel, UrgencyModel

    if task == "sentiment":
        return SentimentModel.load(folder, encoder)
    head = CalibratedHead.load(folder, encoder)
    if task != "urgency":
        return head
    return UrgencyModel(head, SentimentModel.load(folder / URGENCY_SENTIMENT, encoder))


def version_metrics(ref: ModelRef, keys: Iterable[str]) -> dict[str, Any]:
    """The subset of a version's run metrics named by `keys` (absent ones left out)."""
    return {k: ref.metrics[k] for k in keys if k in ref.metrics}


def log_and_register(
    registry: ModelRegistry,
    task: str,
    folder: Path,
    python_model: Any,
    *,
    signature: Any,
    input_example: Any,
    tags: Mapping[str, str] | None = None,
) -> ModelRef:
    """Log `folder` as the `model` artifact of a pyfunc (`models.pyfunc`) in the active MLflow
    run, with its signature and input example, and register it as a new version of
    `relaydesk-<task>`, tagged with `tags`. Requirements are given, not inferred (0.3 s
    instead of 10-16 s)."""
    import mlflow

    from models.pyfunc import PIP_REQUIREMENTS

    name = registered_name(task)
    with tempfile.TemporaryDirectory(prefix="relaydesk-model-") as tmp:
        # MLflow names the artifact folder after the source folder: stage it as `model`.
        staged = shutil.copytree(folder, Path(tmp) / MODEL_ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=python_model,
            artifacts={MODEL_ARTIFACT: str(staged)},
            signature=signature,
            input_example=input_example,
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    for key, value in {TAG_TASK: task, **(tags or {})}.items():
        registry.client.set_model_version_tag(name, version, key, value)
    ref = registry.get(task, version)
    if ref is None:  # pragma: no cover - registration just succeeded
        raise RuntimeError(f"{name} version {version} vanished after registration")
    return ref
