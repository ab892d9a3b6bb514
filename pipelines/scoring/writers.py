"""Scored output in the format of the output file's extension, and the side file of rows
that were not scored.

Every input column is kept as read; the score columns follow. CSV cells hold JSON for
values that are not scalars (a JSONL input's objects and lists); Parquet keeps a Parquet
input's types, and infers the others (a column of mixed types is written as JSON text)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from pipelines.scoring.columns import ROW
from pipelines.scoring.readers import Format, InputTable, RowError, format_of


def errors_path(output: Path) -> Path:
    """`<output>.errors.jsonl`: the rows that were not scored, one JSON object a line."""
    return output.with_name(output.name + ".errors.jsonl")


def write_errors(output: Path, errors: Sequence[RowError]) -> Path | None:
    """Write the side file when there are errors (removing a stale one when there are
    none); returns its path, or None."""
    path = errors_path(output)
    if not errors:
        path.unlink(missing_ok=True)
        return None
    with _atomic(path, "w") as handle:
        for error in errors:
            handle.write(json.dumps(error.as_dict(), ensure_ascii=False) + "\n")
    return path


def write_output(output: Path, table: InputTable, scores: pa.Table) -> None:
    """The good rows of `table` with their `scores` (aligned by `_row`), to `output`."""
    scores = scores.drop_columns([ROW]) if ROW in scores.column_names else scores
    if scores.num_rows != len(table.rows):
        raise ValueError(f"{len(table.rows)} rows but {scores.num_rows} scores")
    kind: Format = format_of(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        _write_parquet(output, table, scores)
    elif kind == "csv":
        _write_csv(output, table, scores)
    else:
        _write_jsonl(output, table, scores)


def _merged(table: InputTable, scores: pa.Table) -> Iterator[dict[str, Any]]:
    for row, score in zip(table.rows, scores.to_pylist(), strict=True):
        yield {**{c: row.get(c) for c in table.columns}, **score}


def _write_jsonl(output: Path, table: InputTable, scores: pa.Table) -> None:
    with _atomic(output, "w") as handle:
        for row in _merged(table, scores):
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def _write_csv(output: Path, table: InputTable, scores: pa.Table) -> None:
    with _atomic(output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*table.columns, *scores.column_names])
        for row in _merged(table, scores):
            writer.writerow([_cell(v) for v in row.values()])


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _write_parquet(output: Path, table: InputTable, scores: pa.Table) -> None:
    import pyarrow.parquet as pq

    inputs = _input_arrow(table)
    combined = pa.Table.from_arrays(
        [*inputs.columns, *scores.columns], names=[*inputs.column_names, *scores.column_names]
    )
    with _atomic(output, "wb") as handle:
        pq.write_table(combined, handle)


def _input_arrow(table: InputTable) -> pa.Table:
    """The input columns as Arrow: a Parquet input's own schema, else inferred per column."""
    if table.schema is not None:
        return pa.Table.from_pylist(table.rows, schema=table.schema)
    arrays = [_column(table, name) for name in table.columns]
    return pa.Table.from_arrays(arrays, names=table.columns)


def _column(table: InputTable, name: str) -> pa.Array:
    values = [row.get(name) for row in table.rows]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: each value as JSON text
        return pa.array(
            [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values],
            type=pa.string(),
        )


@contextmanager
def _atomic(path: Path, mode: str, newline: str | None = None) -> Iterator[IO[Any]]:
    """Write next to `path` and rename over it at the end: an interrupted run leaves the
    previous file, not half of a new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
