"""MLflow pyfunc wrappers, so a registered RelayDesk model also loads by URI
(`mlflow.pyfunc.load_model("models:/relaydesk-intent@champion")`).

Each wrapper's `model` artifact is the folder the task's own code saved; RelayDesk itself
never goes through these wrappers (it fetches that folder, `ModelRegistry.fetch`). Models that
read embeddings load the encoder named by the process settings (`RELAYDESK_AI__ENCODER`, built
under the models folder) and refuse one they were not trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema, TensorSpec

from models.registry import MODEL_ARTIFACT

TEXT_COLUMN = "text"
# log_model infers requirements in 10-16 s otherwise: the package carries its own pins.
PIP_REQUIREMENTS = ["relaydesk"]
# File names inside the `model` folder of the tasks whose own code saves one file.
CATEGORY_FILE = "category.skops"
CATEGORY_META = "category.json"
CHURN_FILE = "churn.skops"
KB_ARTICLES_FILE = "articles.jsonl"
KB_PARAMS_FILE = "params.json"


def text_signature(extra_outputs: tuple[str, ...] = ()) -> ModelSignature:
    """Input: a `text` column. Output: `label`, `confidence` (and any extra string columns)."""
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec("string", "label"),
        ColSpec("double", "confidence"),
    ]
    outputs += [ColSpec("string", name) for name in extra_outputs]
    return ModelSignature(inputs=Schema([ColSpec("string", TEXT_COLUMN)]), outputs=Schema(outputs))


_shared: list[Any] = []


def share_encoder(encoder: Any) -> None:
    """Let wrappers loaded in this process use `encoder` (the one a training job holds, e.g.
    while MLflow checks the input example) instead of loading one from the settings."""
    _shared[:] = [encoder]


def _encoder() -> Any:
    if _shared:
        return _shared[0]
    from core.settings import get_settings
    from models.encoder import load_encoder

    settings = get_settings()
    return load_encoder(settings.ai.encoder, settings.models_dir, settings.ai.encoder_threads)


def _texts(model_input: pd.DataFrame) -> list[str]:
    if TEXT_COLUMN not in model_input.columns:
        raise ValueError(f"the input needs a {TEXT_COLUMN!r} column")
    return [str(t) for t in model_input[TEXT_COLUMN].tolist()]


class _FolderModel(PythonModel):
    folder: Path

    def load_context(self, context: Any) -> None:
        self.folder = Path(context.artifacts[MODEL_ARTIFACT])


class HeadPyfunc(_FolderModel):
    """intent / sentiment / urgency: text → label, calibrated confidence."""

    def __init__(self, task: str) -> None:
        self.task = task

    def load_context(self, context: Any) -> None:
        from models.registry import load_head

        super().load_context(context)
        self.encoder = _encoder()
        self.model = load_head(self.task, self.folder, self.encoder)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from models.heads import CalibratedHead

        texts = _texts(model_input)
        x = self.encoder.encode(texts, "query")
        if isinstance(self.model, CalibratedHead):
            probs = self.model.predict_proba(x)
            labels = self.model.labels
        else:  # UrgencyModel: channel unknown here, repeat contacts from the text
            feats = self.model.features(x, texts, [None] * len(texts))
            probs = self.model.head.predict_proba(feats)
            labels = self.model.head.labels
        return _label_frame(probs, labels)


class CategoryPyfunc(_FolderModel):
    """A tenant's category model: text → category, calibrated confidence."""

    def load_context(self, context: Any) -> None:
        import json

        from models.category import CategoryModel

        super().load_context(context)
        meta = json.loads((self.folder / CATEGORY_META).read_text())
        self.encoder = _encoder() if meta.get("uses_embeddings") else None
        self.model = CategoryModel.load(self.folder / CATEGORY_FILE, self.encoder)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        texts = _texts(model_input)
        x = self.encoder.encode(texts, "query") if self.encoder is not None else None
        return _label_frame(self.model.predict_proba(texts, x), self.model.labels)


class ChurnPyfunc(_FolderModel):
    """The Telco churn model: Telco-shaped rows → calibrated churn probability."""

    def load_context(self, context: Any) -> None:
        from models.churn.telco import TelcoChurnModel

        super().load_context(context)
        self.model = TelcoChurnModel.load(self.folder / CHURN_FILE)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return pd.DataFrame({"churn_probability": self.model.predict_proba(model_input)})


class KbIndexPyfunc(_FolderModel):
    """The knowledge index: query text → the best articles' slugs (JSON list) and scores."""

    def load_context(self, context: Any) -> None:
        from models.retrieval.evaluate import build_index, load_articles

        super().load_context(context)
        self.encoder = _encoder()
        articles = load_articles(self.folder / KB_ARTICLES_FILE)
        self.slugs = {doc.id: slug for slug, doc in articles}
        self.index = build_index(
            self.encoder,
            [doc for _s, doc in articles],
            read_retrieval_params(self.folder / KB_PARAMS_FILE),
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        import json

        texts = _texts(model_input)
        vectors = self.encoder.encode(texts, "query")
        rows = []
        for text, vector in zip(texts, vectors, strict=True):
            hits = self.index.search(text, vector, 5)
            rows.append(json.dumps([self.slugs[h.citation.article_id] for h in hits]))
        return pd.DataFrame({"articles": rows})


def _label_frame(probs: np.ndarray[Any, Any], labels: tuple[str, ...] | list[str]) -> pd.DataFrame:
    best = np.asarray(probs).argmax(axis=1)
    return pd.DataFrame(
        {
            "label": [labels[i] for i in best],
            "confidence": [float(probs[r, i]) for r, i in enumerate(best)],
        }
    )


def write_retrieval_params(params: Any, path: Path) -> Path:
    """`RetrievalParams` as JSON (the chunking parameters nested)."""
    import dataclasses
    import json

    path.write_text(json.dumps(dataclasses.asdict(params), indent=2, sort_keys=True) + "\n")
    return path


def read_retrieval_params(path: Path) -> Any:
    import json

    from models.retrieval import ChunkingParams, RetrievalParams

    raw = json.loads(path.read_text())
    return RetrievalParams(**{**raw, "chunking": ChunkingParams(**raw["chunking"])})
