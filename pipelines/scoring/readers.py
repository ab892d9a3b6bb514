"""Input files for batch scoring, read row by row so that a bad row is reported, not fatal.

Each reader returns the good rows (every input column kept, values as the file holds them)
and one `RowError` per row that cannot be scored, with where it is: the 1-based line in the
file for CSV and JSONL (a CSV record spanning lines is named by its first line), the 0-based
row index for Parquet. Only a text column absent from the whole file is an error of the file
(`MissingColumnError`), since then no row can be scored."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_RAW_CHARS = 500  # of a bad line kept in the error report


class InputError(ValueError):
    """The file cannot be scored at all: unknown format, unreadable, no such column."""


class MissingColumnError(InputError):
    pass


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that was not scored: `line` (CSV, JSONL) or `row` (Parquet) says where."""

    reason: str
    line: int | None = None
    row: int | None = None
    raw: str | None = None

    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"row {self.row}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line} if self.line is not None else {"row": self.row}
        out["reason"] = self.reason
        if self.raw is not None:
            out["raw"] = self.raw
        return out


@dataclass
class InputTable:
    """The good rows of an input, in file order, and what was wrong with the others."""

    source: str  # csv, jsonl, parquet, database
    columns: list[str]
    rows: list[dict[str, Any]]
    errors: list[RowError] = field(default_factory=list)
    # Parquet input: the file's schema, so that the output keeps the input's types.
    schema: pa.Schema | None = None


def format_of(path: Path) -> Format:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"{path.name}: unknown format {path.suffix or '(none)'}; use {known}")
    return found


def read_input(path: Path, text_col: str) -> InputTable:
    """The rows of a CSV, JSONL or Parquet file (by extension) whose `text_col` holds text."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    kind = format_of(path)
    if kind == "csv":
        return read_csv(path, text_col)
    if kind == "jsonl":
        return read_jsonl(path, text_col)
    return read_parquet(path, text_col)


def text_problem(value: object) -> str | None:
    """Why `value` cannot be scored as a message text, or None when it can."""
    if value is None:
        return "no text (null)"
    if not isinstance(value, str):
        return f"text is not a string ({type(value).__name__})"
    if not value.strip():
        return "empty text"
    return None


def _cut(raw: str) -> str:
    return raw if len(raw) <= _RAW_CHARS else raw[:_RAW_CHARS] + "…"


# ----------------------------------------------------------------------------- CSV
def read_csv(path: Path, text_col: str) -> InputTable:
    # utf-8-sig: spreadsheet exports start with a byte-order mark the header must not keep
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise MissingColumnError(f"{path.name} is empty: no header row") from None
        except csv.Error as exc:
            raise InputError(f"{path.name}: the header line cannot be read: {exc}") from None
        if text_col not in header:
            raise MissingColumnError(_missing(path, text_col, header))
        table = InputTable("csv", header, [])
        for line, record, problem in _csv_records(reader):
            if problem is None and len(record) != len(header):
                problem = f"{len(record)} fields where the header has {len(header)}"
            row = dict(zip(header, record, strict=False)) if problem is None else {}
            problem = problem or text_problem(row.get(text_col))
            if problem is not None:
                table.errors.append(RowError(problem, line=line, raw=_cut(",".join(record))))
                continue
            table.rows.append(row)
    return table


def _csv_records(reader: Any) -> Iterator[tuple[int, list[str], str | None]]:
    """(first line of the record, fields, what is wrong with it) for every record; a record
    the csv module refuses is reported and reading goes on with the next line."""
    while True:
        first = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield first, [], f"malformed CSV: {exc}"
            continue
        if record:  # blank lines are not rows
            yield first, record, None


# ----------------------------------------------------------------------------- JSONL
def read_jsonl(path: Path, text_col: str) -> InputTable:
    table = InputTable("jsonl", [], [])
    seen: dict[str, None] = {}
    objects = 0
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                table.errors.append(RowError(f"invalid JSON: {exc.msg}", line, raw=_cut(raw)))
                continue
            if not isinstance(row, dict):
                reason = f"not a JSON object ({type(row).__name__})"
                table.errors.append(RowError(reason, line, raw=_cut(raw.strip())))
                continue
            objects += 1
            seen.update(dict.fromkeys(row))
            problem = "no text column" if text_col not in row else text_problem(row[text_col])
            if problem is not None:
                table.errors.append(RowError(problem, line, raw=_cut(raw.strip())))
                continue
            table.rows.append(row)
    if text_col not in seen:
        detail = "" if objects else " (no JSON object in it)"
        raise MissingColumnError(_missing(path, text_col, list(seen)) + detail)
    table.columns = list(seen)
    return table


# ----------------------------------------------------------------------------- Parquet
def read_parquet(path: Path, text_col: str) -> InputTable:
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path.name}: not a readable Parquet file: {exc}") from None
    if text_col not in data.column_names:
        raise MissingColumnError(_missing(path, text_col, data.column_names))
    table = InputTable("parquet", list(data.column_names), [], schema=data.schema)
    for index, row in enumerate(data.to_pylist()):
        problem = text_problem(row.get(text_col))
        if problem is not None:
            table.errors.append(RowError(problem, row=index))
            continue
        table.rows.append(row)
    return table


def _missing(path: Path, column: str, columns: list[str]) -> str:
    shown = ", ".join(columns[:20]) + (" …" if len(columns) > 20 else "")
    return f"{path.name} has no column {column!r} (columns: {shown or 'none'})"
