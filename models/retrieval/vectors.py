"""The `VectorIndex` port: inner-product search over keyed unit vectors, with removal.

`FaissIndex` is exact (`IndexFlatIP`) while small and switches to HNSW (`IndexHNSWFlat`,
inner product) at `hnsw_min` vectors; `NumpyIndex` is the exact in-memory twin the port's
tests compare it with. Keys are int64 chosen by the caller."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["FaissIndex", "NumpyIndex", "VectorIndex"]

logger = logging.getLogger(__name__)

F32Array = npt.NDArray[np.float32]
I64Array = npt.NDArray[np.int64]
IndexKind = Literal["flat", "hnsw", "numpy"]


@runtime_checkable
class VectorIndex(Protocol):
    """Keyed vectors; `search` returns (scores, keys) of shape (n_queries, k), best first,
    padded with key -1 and score -inf where fewer than k vectors exist."""

    @property
    def kind(self) -> IndexKind: ...

    def __len__(self) -> int: ...

    def add(self, keys: I64Array, vectors: F32Array) -> None: ...

    def remove(self, keys: Iterable[int]) -> None: ...

    def search(self, queries: F32Array, k: int) -> tuple[F32Array, I64Array]: ...


def _padded(n: int, k: int) -> tuple[F32Array, I64Array]:
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)


class NumpyIndex:
    """Exact search by one matrix product: the twin for tests and tiny indexes."""

    kind: IndexKind = "numpy"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._vectors: dict[int, F32Array] = {}

    def __len__(self) -> int:
        return len(self._vectors)

    def add(self, keys: I64Array, vectors: F32Array) -> None:
        for key, vector in zip(keys.tolist(), np.asarray(vectors, dtype=np.float32), strict=True):
            self._vectors[int(key)] = vector

    def remove(self, keys: Iterable[int]) -> None:
        for key in keys:
            self._vectors.pop(int(key), None)

    def search(self, queries: F32Array, k: int) -> tuple[F32Array, I64Array]:
        scores, found = _padded(len(queries), k)
        if not self._vectors or k <= 0:
            return scores, found
        keys = np.fromiter(self._vectors, dtype=np.int64, count=len(self._vectors))
        sims = np.asarray(queries, dtype=np.float32) @ np.stack(list(self._vectors.values())).T
        take = min(k, len(keys))
        order = np.argsort(-sims, axis=1, kind="stable")[:, :take]
        scores[:, :take] = np.take_along_axis(sims, order, axis=1)
        found[:, :take] = keys[order]
        return scores, found


class FaissIndex:
    """FAISS with removal at both sizes.

    Flat: `IndexIDMap2(IndexFlatIP)`, where `remove_ids` is exact. HNSW graphs cannot drop
    nodes, so a removed key becomes a tombstone: searches ask for extra neighbours and drop
    tombstoned keys, and the graph is rebuilt from the kept vectors once tombstones pass
    `rebuild_ratio` of the live count. Below half of `hnsw_min` the index goes back to
    flat (the gap keeps a tenant near the threshold from rebuilding on every edit)."""

    def __init__(
        self,
        dim: int,
        *,
        hnsw_min: int = 20_000,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        rebuild_ratio: float = 0.2,
    ) -> None:
        self.dim = dim
        self.hnsw_min = hnsw_min
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.rebuild_ratio = rebuild_ratio
        # Kept beside FAISS so that a switch or a rebuild never needs the encoder again.
        self._vectors: dict[int, F32Array] = {}
        self._tombstones: set[int] = set()
        self._kind: IndexKind = "flat"
        self._index: Any = self._new_flat()

    @property
    def kind(self) -> IndexKind:
        return self._kind

    def __len__(self) -> int:
        return len(self._vectors)

    def add(self, keys: I64Array, vectors: F32Array) -> None:
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(keys) == 0:
            return
        if any(int(key) in self._vectors for key in keys):
            self.remove(keys.tolist())  # a re-added key replaces its vector
        for key, vector in zip(keys.tolist(), vectors, strict=True):
            self._vectors[key] = vector
        if self._kind == "flat" and len(self._vectors) >= self.hnsw_min:
            self._rebuild("hnsw")
        elif self._tombstones.intersection(keys.tolist()):
            # the graph still holds the old node under this key: rebuild (callers that
            # never reuse keys, like KbIndex, never get here)
            self._rebuild(self._kind)
        else:
            self._index.add_with_ids(vectors, keys)

    def remove(self, keys: Iterable[int]) -> None:
        gone = [int(key) for key in keys if int(key) in self._vectors]
        if not gone:
            return
        for key in gone:
            del self._vectors[key]
        if self._kind == "flat":
            import faiss

            self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(gone, dtype=np.int64)))
            return
        self._tombstones.update(gone)
        if len(self._vectors) < self.hnsw_min // 2:
            self._rebuild("flat")
        elif len(self._tombstones) > self.rebuild_ratio * max(len(self._vectors), 1):
            self._rebuild("hnsw")

    def search(self, queries: F32Array, k: int) -> tuple[F32Array, I64Array]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, found = _padded(len(queries), k)
        if not self._vectors or k <= 0:
            return scores, found
        ask = min(k + len(self._tombstones), self._index.ntotal)
        raw_scores, raw_keys = self._index.search(queries, ask)
        for row in range(len(queries)):
            kept = [
                (s, key)
                for s, key in zip(raw_scores[row], raw_keys[row], strict=True)
                if key >= 0 and int(key) not in self._tombstones
            ][:k]
            for col, (s, key) in enumerate(kept):
                scores[row, col], found[row, col] = s, key
        return scores, found

    def _new_flat(self) -> Any:
        import faiss

        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _new_hnsw(self) -> Any:
        import faiss

        graph = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.ef_construction
        graph.hnsw.efSearch = self.ef_search
        return faiss.IndexIDMap2(graph)

    def _rebuild(self, kind: IndexKind) -> None:
        started = time.perf_counter()
        index = self._new_hnsw() if kind == "hnsw" else self._new_flat()
        if self._vectors:
            keys = np.fromiter(self._vectors, dtype=np.int64, count=len(self._vectors))
            index.add_with_ids(np.stack(list(self._vectors.values())), keys)
        self._index, self._kind = index, kind
        self._tombstones.clear()
        logger.info(
            "vector index rebuilt as %s with %d vectors in %.1f ms",
            kind,
            len(self._vectors),
            (time.perf_counter() - started) * 1e3,
        )
