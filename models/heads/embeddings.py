"""Embedding cache: a data set is embedded once per encoder version and kept as `.npy`.

The key is sha256 over the encoder name and version, the prefix kind and every text, so a
changed encoder or changed data never reads stale vectors."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.encoder import Encoder, Kind

logger = logging.getLogger(__name__)

F32Array = npt.NDArray[np.float32]


def texts_sha256(texts: list[str]) -> str:
    """A digest of the texts in order (length-prefixed, so boundaries count)."""
    digest = hashlib.sha256()
    for text in texts:
        raw = text.encode()
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def embedding_key(encoder: Encoder, texts: list[str], kind: Kind) -> str:
    digest = hashlib.sha256(f"{encoder.name}\0{encoder.version}\0{kind}\0".encode())
    digest.update(texts_sha256(texts).encode())
    return digest.hexdigest()[:24]


def embed_cached(
    encoder: Encoder, texts: list[str], cache_dir: Path | None, kind: Kind = "query"
) -> F32Array:
    """`encoder.encode(texts, kind)`, read from / written to `cache_dir` when one is given."""
    if cache_dir is None:
        return encoder.encode(texts, kind)
    path = cache_dir / "embeddings" / f"{encoder.name}-{embedding_key(encoder, texts, kind)}.npy"
    if path.is_file():
        cached = np.load(path, allow_pickle=False)
        if cached.shape == (len(texts), encoder.dim):
            return np.asarray(cached, dtype=np.float32)
    started = time.perf_counter()
    vectors = encoder.encode(texts, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(partial, vectors, allow_pickle=False)
    partial.replace(path)  # atomic: a concurrent reader never sees half a file
    logger.info(
        "embedded %d texts with %s in %.1f s",
        len(texts),
        encoder.name,
        time.perf_counter() - started,
    )
    return vectors
