"""An RBF kernel feature map (Nyström) that a `CalibratedHead` can read its embedding through.

A linear head on the e5 embedding cannot bend its decision boundary; an RBF kernel can, and
the Nyström approximation keeps it a linear model on `m` kernel features, so the head keeps
its calibration, abstention and save/load:

    z = (x - mean) / scale                      standardised embedding (training part)
    k = exp(-gamma · ‖z - landmark_j‖²)         j = 1..m landmarks drawn from the training part
    φ(x) = k · normalizationᵀ                   K_mm^(-1/2), so φ(x)·φ(y) ≈ k(x, y)

Fitted with scikit-learn's `Nystroem` (seeded); the arrays are stored with the head's
weights (no pickle) and `transform` is plain NumPy, equal to `Nystroem.transform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F64Array = npt.NDArray[np.float64]

KIND = "rbf-nystroem"
ARRAY_NAMES = ("mean", "scale", "landmarks", "normalization")


@dataclass(frozen=True)
class RbfFeatureMap:
    """φ(x) of the module docstring; `input_dim` embedding columns in, `dim` features out."""

    gamma: float
    # float64 throughout: K_mm^(-1/2) amplifies any rounding of the landmarks
    mean: F64Array
    scale: F64Array
    landmarks: F64Array
    normalization: F64Array

    @classmethod
    def fit(
        cls,
        features: npt.NDArray[np.floating[Any]],
        *,
        n_components: int,
        gamma: float,
        seed: int = 0,
    ) -> RbfFeatureMap:
        """Standardise `features`, draw `n_components` landmarks (seeded) and compute
        K_mm^(-1/2). `gamma` is per standardised dimension: the kernel uses gamma / d."""
        from sklearn.kernel_approximation import Nystroem

        x = np.asarray(features, dtype=np.float64)
        mean = x.mean(axis=0)
        scale = np.maximum(x.std(axis=0), 1e-6)
        z = (x - mean) / scale
        per_dim = gamma / x.shape[1]
        nystroem = Nystroem(
            kernel="rbf",
            gamma=per_dim,
            n_components=min(n_components, len(x)),
            random_state=seed,
        ).fit(z)
        return cls(
            gamma=per_dim,
            mean=mean,
            scale=scale,
            landmarks=np.asarray(nystroem.components_, dtype=np.float64),
            normalization=np.asarray(nystroem.normalization_, dtype=np.float64),
        )

    @property
    def input_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def dim(self) -> int:
        return int(self.normalization.shape[0])

    def transform(self, features: npt.NDArray[np.floating[Any]]) -> F64Array:
        """(n, input_dim) embeddings -> (n, dim) kernel features."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        landmarks = self.landmarks
        # ‖z - l‖² = ‖z‖² + ‖l‖² - 2 z·l, clipped at 0 against rounding
        sq = (z * z).sum(axis=1)[:, None] + (landmarks * landmarks).sum(axis=1)[None, :]
        sq = np.maximum(sq - 2.0 * z @ landmarks.T, 0.0)
        out: F64Array = np.exp(-self.gamma * sq) @ self.normalization.T
        return out

    def describe(self) -> dict[str, Any]:
        """What `head.json` records about the map (the arrays go to the weights file)."""
        return {"kind": KIND, "gamma": self.gamma, "n_components": self.dim}

    def arrays(self) -> dict[str, F64Array]:
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    @classmethod
    def from_saved(cls, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> RbfFeatureMap:
        if meta.get("kind") != KIND:
            raise ValueError(f"unknown feature map {meta.get('kind')!r}")
        if missing := [name for name in ARRAY_NAMES if name not in arrays]:
            raise ValueError(f"feature map arrays missing: {missing}")
        return cls(
            gamma=float(meta["gamma"]),
            mean=np.asarray(arrays["mean"], dtype=np.float64),
            scale=np.asarray(arrays["scale"], dtype=np.float64),
            landmarks=np.asarray(arrays["landmarks"], dtype=np.float64),
            normalization=np.asarray(arrays["normalization"], dtype=np.float64),
        )
