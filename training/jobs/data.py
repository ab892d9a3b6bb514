"""Labelled tables in, frozen stratified splits out, with a fingerprint of what was read.

The test split is a pure function of the data and the seed: within each stratum (the label,
or label and source), rows are ranked by sha256(seed, key) (the key is the text, or the
whole row for tabular data) and the first `test_fraction` of each stratum is the test set.
Rows with the same key always land in the same split, and adding rows moves few old ones:
a row's rank depends on its own key only. The test rows are logged with every run, so the
gate scores the champion and the candidate on exactly the same rows."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")


class DataError(ValueError):
    """The training data cannot be used (unreadable, missing columns, too few rows)."""


def read_table(path: Path) -> pd.DataFrame:
    """A CSV, Parquet or JSON-lines file as a DataFrame."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl")
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot read it as {suffix[1:]}: {exc}") from exc
    raise DataError(f"{path}: expected one of {', '.join(TABLE_SUFFIXES)}")


def labelled_texts(
    df: pd.DataFrame, text_column: str, label_column: str, *, where: str
) -> pd.DataFrame:
    """`text` and `label` columns (plus the others), rows with a blank text or label dropped."""
    missing = [c for c in (text_column, label_column) if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; columns are {list(df.columns)}")
    out = df.rename(columns={text_column: "text", label_column: "label"})
    out["text"] = out["text"].astype("string").str.strip()
    out["label"] = out["label"].astype("string").str.strip()
    keep = out["text"].notna() & (out["text"] != "") & out["label"].notna() & (out["label"] != "")
    return out.loc[keep].reset_index(drop=True)


def row_keys(df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """One key per row: the named columns joined (what decides identity for splitting)."""
    parts = df.loc[:, list(columns)].astype(str).to_numpy()
    return ["\x1f".join(row) for row in parts]


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


@dataclass(frozen=True)
class Split:
    """Row positions of the training pool and the frozen test set."""

    train: np.ndarray[Any, np.dtype[np.int64]]
    test: np.ndarray[Any, np.dtype[np.int64]]


def frozen_split(
    keys: Sequence[str], strata: Sequence[str], *, seed: int, test_fraction: float
) -> Split:
    """Per stratum, the `test_fraction` of rows with the lowest sha256(seed, key) (at least one
    when the stratum has three rows or more); rows sharing a key share a split."""
    if len(keys) != len(strata):
        raise ValueError("keys and strata differ in length")
    assigned: dict[str, bool] = {}
    by_stratum: dict[str, list[int]] = {}
    for i, s in enumerate(strata):
        by_stratum.setdefault(s, []).append(i)
    for stratum in sorted(by_stratum):
        distinct = sorted(
            {keys[i] for i in by_stratum[stratum]} - assigned.keys(), key=lambda k: _rank(seed, k)
        )
        n_test = round(test_fraction * len(distinct))
        if n_test == 0 and len(distinct) >= 3:
            n_test = 1
        for j, key in enumerate(distinct):
            assigned[key] = j < n_test
    test = np.array([i for i, k in enumerate(keys) if assigned[k]], dtype=np.int64)
    train = np.array([i for i, k in enumerate(keys) if not assigned[k]], dtype=np.int64)
    return Split(train=train, test=test)


def thin(n: int, max_rows: int | None) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Positions of a deterministic slice of at most `max_rows` (every k-th row), or all."""
    if max_rows is None or n <= max_rows:
        return np.arange(n, dtype=np.int64)
    step = math.ceil(n / max_rows)
    return np.arange(0, n, step, dtype=np.int64)


def frame_sha256(df: pd.DataFrame) -> str:
    """sha256 over a frame's columns and values (row order counts)."""
    digest = hashlib.sha256("\x1f".join(map(str, df.columns)).encode())
    hashed = pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy()
    digest.update(np.ascontiguousarray(hashed).tobytes())
    return digest.hexdigest()


def check_classes(labels: Sequence[str], *, minimum: int = 2, where: str) -> None:
    classes = sorted(set(labels))
    if len(classes) < minimum:
        raise DataError(f"{where}: needs at least {minimum} classes, found {classes}")
