"""A calibrated linear head over the shared embedding (plus optional extra features).

Multinomial logistic regression (scikit-learn, lbfgs) on standardised features. The data are
split once, stratified with a fixed seed: the regression is fitted on the training part and a
single temperature T on the validation part, by minimising its negative log-likelihood, so
`softmax(logits / T)` is calibrated. When several regularisation strengths C are given, the
one with the lowest calibrated validation log-loss is kept. The head that ships is the one
whose logits T was fitted on (no refit on all rows: a refit changes the logit scale).

Optionally the head reads the embedding through an RBF kernel feature map
(`models.heads.kernel.RbfFeatureMap`, fitted on the training part only): the regression and
its standardisation then apply to the kernel features, and everything else is the same.

Saved as a folder: `head.json` (labels, temperature, encoder name and version, training
info, the feature map's parameters) and `weights.npz` (coef, intercept, mean, scale, the
feature map's arrays), loaded without pickle. A head with a feature map is written as format
2, which older code refuses instead of misreading."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.encoder import Encoder
from models.heads.kernel import RbfFeatureMap

F32Array = npt.NDArray[np.float32]
F64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FORMAT_VERSION = 1
FORMAT_WITH_FEATURE_MAP = 2
HEAD_JSON = "head.json"
WEIGHTS_NPZ = "weights.npz"
LOW_CONFIDENCE = "low_confidence"
NO_ENABLED_LABEL = "no_enabled_label"
ECE_BINS = 15
EXTRA = "extra_"
FEATURE_MAP = "map_"


@dataclass(frozen=True)
class KernelSpec:
    """Read the embedding through an RBF Nyström map (see `models.heads.kernel`)."""

    n_components: int
    gamma: float


class EncoderMismatchError(ValueError):
    """A saved head was trained on another encoder (name or version) than the one given."""


@dataclass(frozen=True)
class Prediction:
    """One message's label; `label` is None when the head abstains, with the reason."""

    label: str | None
    confidence: float
    probabilities: dict[str, float]
    abstained_reason: str | None = None


def softmax(logits: npt.NDArray[np.floating[Any]]) -> F64Array:
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: F64Array = exp / exp.sum(axis=1, keepdims=True)
    return out


def nll(logits: F64Array, target: IntArray, weight: F64Array | None = None) -> float:
    """(Weighted) mean negative log-likelihood of `target` under softmax(logits)."""
    top = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float(np.average(log_z - logits[np.arange(len(target)), target], weights=weight))


def fit_temperature(logits: F64Array, target: IntArray, weight: F64Array | None = None) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T): a 1-d bounded search on log T."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda log_t: nll(logits / math.exp(log_t), target, weight),
        bounds=(math.log(1e-3), math.log(1e3)),
        method="bounded",
    )
    return float(math.exp(result.x))


def expected_calibration_error(
    probabilities: npt.NDArray[np.floating[Any]], target: Sequence[int] | IntArray, n_bins: int = 15
) -> float:
    """Top-label ECE: Σ_bins (n_b / n)·|accuracy_b - mean confidence_b| over `n_bins` equal-width
    confidence bins (0, 1/n], …, ((n-1)/n, 1]."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if len(probs) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(target)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            gap = abs(float(correct[in_bin].mean()) - float(confidence[in_bin].mean()))
            total += float(in_bin.mean()) * gap
    return total


def group_weights(groups: Sequence[str]) -> F64Array:
    """Per-row weights that give every group the same total weight (mean weight 1)."""
    names, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    out: F64Array = len(groups) / (len(names) * counts[inverse].astype(np.float64))
    return out


def stratified_split(target: IntArray, val_fraction: float, seed: int) -> tuple[IntArray, IntArray]:
    """(train rows, validation rows), stratified by class, fixed seed."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(target))
    train, val = train_test_split(
        rows, test_size=val_fraction, stratify=target, random_state=seed, shuffle=True
    )
    return np.sort(train), np.sort(val)


@dataclass
class CalibratedHead:
    """softmax((standardised features · coefᵀ + intercept) / temperature) over `labels`."""

    task: str
    labels: tuple[str, ...]
    coef: F32Array
    intercept: F32Array
    mean: F32Array
    scale: F32Array
    temperature: float
    encoder_name: str
    encoder_version: str
    info: dict[str, Any] = field(default_factory=dict)
    # task-specific arrays saved with the weights (the intent head keeps class centroids here)
    arrays: dict[str, F32Array] = field(default_factory=dict)
    feature_map: RbfFeatureMap | None = None

    @classmethod
    def fit(
        cls,
        features: npt.NDArray[np.floating[Any]],
        targets: Sequence[str],
        *,
        task: str,
        encoder: Encoder,
        labels: Sequence[str] | None = None,
        c_grid: Sequence[float] = (0.05,),
        val_fraction: float = 0.2,
        seed: int = 0,
        sample_weight: npt.NDArray[np.floating[Any]] | None = None,
        calibration_groups: Sequence[str] | None = None,
        info: dict[str, Any] | None = None,
        kernel: KernelSpec | None = None,
        extra_columns: int = 0,
        extra_weight: float = 1.0,
    ) -> CalibratedHead:
        """Fit on a stratified training part, temperature (and C) on the validation part.

        `calibration_groups` names each row's domain; each domain then weighs the same in the
        temperature fit and the choice of C, however many validation rows it has (otherwise
        the largest data set alone sets the temperature for every domain the head serves).

        `extra_weight` multiplies the last `extra_columns` columns after standardisation (their
        stored `scale` is divided by it, so saved heads keep their format): the L2 penalty then
        costs those columns' coefficients `extra_weight`² times less, so a few hand-made
        features are not drowned by hundreds of embedding dimensions penalised alike."""
        label_set = tuple(labels) if labels is not None else tuple(sorted(set(targets)))
        index = {label: i for i, label in enumerate(label_set)}
        if unknown := sorted(set(targets) - set(index)):
            raise ValueError(f"targets outside the label set: {unknown}")
        if missing := [label for label in label_set if label not in set(targets)]:
            raise ValueError(f"labels without a training example: {missing}")
        if not c_grid:
            raise ValueError("c_grid is empty")
        x = np.asarray(features, dtype=np.float64)
        if not 0 <= extra_columns <= x.shape[1]:
            raise ValueError(f"extra_columns {extra_columns} outside 0..{x.shape[1]}")
        if extra_weight <= 0:
            raise ValueError(f"extra_weight must be positive, got {extra_weight}")
        if extra_columns and kernel is not None:
            raise ValueError("extra_columns weighs raw columns: it cannot go with a kernel map")
        y = np.array([index[t] for t in targets], dtype=np.int64)
        train, val = stratified_split(y, val_fraction, seed)
        feature_map = None
        if kernel is not None:
            feature_map = RbfFeatureMap.fit(
                x[train], n_components=kernel.n_components, gamma=kernel.gamma, seed=seed
            )
            x = feature_map.transform(x)
        mean = x[train].mean(axis=0)
        scale = np.maximum(x[train].std(axis=0), 1e-6)
        if extra_columns:
            scale[-extra_columns:] /= extra_weight
        z = (x - mean) / scale
        weight = None if sample_weight is None else np.asarray(sample_weight)[train]
        val_weight = (
            group_weights([calibration_groups[i] for i in val]) if calibration_groups else None
        )
        fits = [
            _fit_one(z[train], y[train], z[val], y[val], c, weight, val_weight, seed)
            for c in c_grid
        ]
        loss, c, temperature, coef, intercept = min(fits, key=lambda fit: fit[0])
        val_probs = softmax((z[val] @ coef.T + intercept) / temperature)
        details = {
            "C": c,
            "c_grid": list(c_grid),
            "seed": seed,
            "val_fraction": val_fraction,
            "n_train": len(train),
            "n_val": len(val),
            "val_nll": round(loss, 4),
            "val_accuracy": round(float((val_probs.argmax(axis=1) == y[val]).mean()), 4),
            "val_ece": round(expected_calibration_error(val_probs, y[val]), 4),
            "calibration_groups": sorted(set(calibration_groups or [])),
            **({"feature_map": feature_map.describe()} if feature_map else {}),
            **(
                {"extra_columns": extra_columns, "extra_weight": extra_weight}
                if extra_columns
                else {}
            ),
            **(info or {}),
        }
        return cls(
            task=task,
            labels=label_set,
            coef=coef.astype(np.float32),
            intercept=intercept.astype(np.float32),
            mean=mean.astype(np.float32),
            scale=scale.astype(np.float32),
            temperature=temperature,
            encoder_name=encoder.name,
            encoder_version=encoder.version,
            info=details,
            feature_map=feature_map,
        )

    def fingerprint(self) -> str:
        """A short digest of the weights and temperature: which head produced a feature."""
        digest = hashlib.sha256(json.dumps([self.task, self.labels, self.temperature]).encode())
        for array in (self.coef, self.intercept, self.mean, self.scale):
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        if self.feature_map is not None:
            for kernel_array in self.feature_map.arrays().values():
                digest.update(np.ascontiguousarray(kernel_array).tobytes())
        return digest.hexdigest()[:16]

    @property
    def dim(self) -> int:
        """Input columns: the embedding (plus extras), before any feature map."""
        if self.feature_map is not None:
            return self.feature_map.input_dim
        return int(self.coef.shape[1])

    def logits(self, features: npt.NDArray[np.floating[Any]]) -> F64Array:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{self.task} head expects (n, {self.dim}) features, got {x.shape}")
        if self.feature_map is not None:
            x = self.feature_map.transform(x)
        z = (x - self.mean) / self.scale
        out: F64Array = z @ self.coef.T.astype(np.float64) + self.intercept
        return out

    def predict_proba(self, features: npt.NDArray[np.floating[Any]]) -> F64Array:
        """Calibrated (n, k) probabilities, columns in `labels` order."""
        return softmax(self.logits(features) / self.temperature)

    def predict(
        self,
        features: npt.NDArray[np.floating[Any]],
        threshold: float = 0.5,
        allowed: Collection[str] | None = None,
    ) -> list[Prediction]:
        """Top label per row, or None (reason "low_confidence") below `threshold`.

        `allowed` restricts the answer to a subset of `labels` (probabilities renormalised over
        it, in logit space so it stays exact); names outside the label set are ignored."""
        keep = [i for i, label in enumerate(self.labels) if allowed is None or label in allowed]
        scaled = self.logits(features) / self.temperature
        if not keep:
            return [Prediction(None, 0.0, {}, NO_ENABLED_LABEL) for _ in range(len(scaled))]
        kept = [self.labels[i] for i in keep]
        return predictions_from(softmax(scaled[:, keep]), kept, threshold)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, F32Array] = {
            "coef": self.coef,
            "intercept": self.intercept,
            "mean": self.mean,
            "scale": self.scale,
            **{EXTRA + name: array for name, array in self.arrays.items()},
        }
        maps = self.feature_map.arrays() if self.feature_map is not None else {}
        with (folder / WEIGHTS_NPZ).open("wb") as fh:
            np.savez(
                fh,
                allow_pickle=False,
                **arrays,
                **{FEATURE_MAP + k: v for k, v in maps.items()},
            )
        meta: dict[str, Any] = {
            "format": FORMAT_VERSION if self.feature_map is None else FORMAT_WITH_FEATURE_MAP,
            "task": self.task,
            "labels": list(self.labels),
            "temperature": self.temperature,
            "encoder": {"name": self.encoder_name, "version": self.encoder_version},
            "info": self.info,
        }
        if self.feature_map is not None:
            meta["feature_map"] = self.feature_map.describe()
        (folder / HEAD_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path, encoder: Encoder) -> CalibratedHead:
        """A saved head; raises EncoderMismatchError unless `encoder` is the one it was
        trained on (same name and version): embeddings of another encoder are meaningless."""
        meta = json.loads((folder / HEAD_JSON).read_text())
        if meta.get("format") not in (FORMAT_VERSION, FORMAT_WITH_FEATURE_MAP):
            raise ValueError(f"{folder}: unsupported head format {meta.get('format')!r}")
        trained = meta["encoder"]
        if (trained["name"], trained["version"]) != (encoder.name, encoder.version):
            raise EncoderMismatchError(
                f"the {meta['task']} head in {folder} was trained on encoder "
                f"{trained['name']} version {trained['version']}, but the encoder given is "
                f"{encoder.name} version {encoder.version}: retrain the head on this encoder "
                "or load the encoder it was trained on"
            )
        with np.load(folder / WEIGHTS_NPZ, allow_pickle=False) as weights:
            arrays = {
                k: np.asarray(weights[k], dtype=np.float32)
                for k in weights.files
                if not k.startswith(FEATURE_MAP)
            }
            cut = len(FEATURE_MAP)
            # the map keeps its own dtypes: K_mm^(-1/2) needs float64
            maps = {k[cut:]: weights[k] for k in weights.files if k.startswith(FEATURE_MAP)}
        feature_map = None
        if "feature_map" in meta:
            feature_map = RbfFeatureMap.from_saved(meta["feature_map"], maps)
        return cls(
            task=str(meta["task"]),
            labels=tuple(meta["labels"]),
            coef=arrays["coef"],
            intercept=arrays["intercept"],
            mean=arrays["mean"],
            scale=arrays["scale"],
            temperature=float(meta["temperature"]),
            encoder_name=str(trained["name"]),
            encoder_version=str(trained["version"]),
            info=dict(meta.get("info", {})),
            arrays={k[len(EXTRA) :]: v for k, v in arrays.items() if k.startswith(EXTRA)},
            feature_map=feature_map,
        )


def _fit_one(
    x: F64Array,
    y: IntArray,
    x_val: F64Array,
    y_val: IntArray,
    c: float,
    weight: npt.NDArray[np.floating[Any]] | None,
    val_weight: F64Array | None,
    seed: int,
) -> tuple[float, float, float, F64Array, F64Array]:
    """(calibrated validation NLL, C, T, coef (k, d), intercept (k,)) for one C."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    model.fit(x, y, sample_weight=weight)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # two classes: sigmoid(w·x + b) = softmax of ±(w·x + b)/2
        coef, intercept = np.vstack([-coef, coef]) / 2, np.array([-intercept[0], intercept[0]]) / 2
    val_logits = x_val @ coef.T + intercept
    temperature = fit_temperature(val_logits, y_val, val_weight)
    return nll(val_logits / temperature, y_val, val_weight), c, temperature, coef, intercept


def predictions_from(
    probabilities: npt.NDArray[np.floating[Any]], labels: Sequence[str], threshold: float
) -> list[Prediction]:
    """Predictions from (n, k) probabilities over `labels`: top label or an abstention."""
    out: list[Prediction] = []
    for row in np.asarray(probabilities, dtype=np.float64):
        best = int(row.argmax())
        confidence = float(row[best])
        dist = {label: float(p) for label, p in zip(labels, row, strict=True)}
        if confidence < threshold:
            out.append(Prediction(None, confidence, dist, LOW_CONFIDENCE))
        else:
            out.append(Prediction(labels[best], confidence, dist, None))
    return out
