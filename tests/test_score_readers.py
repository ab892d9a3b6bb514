"""Scoring input: bad rows are found with their line (or row) and never stop the read; a
text column missing from the whole file is the one error of the file."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from core.cli.main import app
from pipelines.scoring.readers import InputError, MissingColumnError, read_input

runner = CliRunner()

BAD_CSV = (
    "id,text,channel\n"  # line 1
    "1,Where is my order 4411?,email\n"  # 2
    '2,"two lines\nabout a refund",web\n'  # 3-4
    "3,too,many,fields\n"  # 5
    "4,,web\n"  # 6
    "\n"  # 7: blank, not a row
    '5,"I was charged twice, please help",whatsapp\n'  # 8
    '6,"never closed\n'  # 9: the quote runs to the end of the file
)

BAD_JSONL = "\n".join(
    [
        json.dumps({"id": 1, "text": "My package never arrived", "meta": {"tier": "gold"}}),
        "{not json",
        "[1, 2]",
        json.dumps({"id": 4, "text": 42}),
        json.dumps({"id": 5, "body": "no text key"}),
        "",
        json.dumps({"id": 7, "text": "   "}),
        json.dumps({"id": 8, "text": "Quiero cancelar mi suscripción"}),
    ]
)


def test_csv_bad_rows_are_reported_by_their_first_line(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(BAD_CSV)
    table = read_input(source, "text")
    assert [r["id"] for r in table.rows] == ["1", "2", "5"]
    assert table.rows[1]["text"] == "two lines\nabout a refund"
    assert table.columns == ["id", "text", "channel"]
    found = {e.line: e.reason for e in table.errors}
    assert set(found) == {5, 6, 9}
    assert "4 fields where the header has 3" in found[5]
    assert found[6] == "empty text"
    assert found[9].startswith("malformed CSV")


def test_jsonl_bad_lines_are_reported_and_the_rest_kept(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(BAD_JSONL)
    table = read_input(source, "text")
    assert [r["id"] for r in table.rows] == [1, 8]
    assert table.rows[0]["meta"] == {"tier": "gold"}
    assert table.columns == ["id", "text", "meta", "body"]
    found = {e.line: e.reason for e in table.errors}
    assert found == {
        2: found[2],
        3: "not a JSON object (list)",
        4: "text is not a string (int)",
        5: "no text column",
        7: "empty text",
    }
    assert found[2].startswith("invalid JSON")


def test_parquet_rows_without_text_are_reported_by_index(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [10, 11, 12], "text": ["hello there", None, ""]}), source)
    table = read_input(source, "text")
    assert [r["id"] for r in table.rows] == [10]
    assert [(e.row, e.reason) for e in table.errors] == [(1, "no text (null)"), (2, "empty text")]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_missing_text_column_is_an_error_of_the_file(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"in{suffix}"
    rows = [{"id": 1, "body": "hello"}]
    if suffix == ".csv":
        source.write_text("id,body\n1,hello\n")
    elif suffix == ".jsonl":
        source.write_text(json.dumps(rows[0]) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), source)
    with pytest.raises(MissingColumnError, match=r"no column 'text'.*body"):
        read_input(source, "text")


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes("text,id\nhello there,1\n".encode("utf-8-sig"))
    assert read_input(source, "text").rows == [{"text": "hello there", "id": "1"}]


def test_unknown_formats_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.xlsx"
    source.write_text("x")
    with pytest.raises(InputError, match="unknown format"):
        read_input(source, "text")


def test_score_exits_2_with_a_message_when_the_column_is_missing(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,body\n1,hello\n")
    output = tmp_path / "out.csv"
    result = runner.invoke(
        app, ["score", "--input", str(source), "--text-col", "message", "--output", str(output)]
    )
    assert result.exit_code == 2, result.output
    assert "in.csv has no column 'message' (columns: id, body)" in result.output
    assert "Traceback" not in result.output
    assert not output.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "intent,mood"], "unknown task(s) mood"),
        (["--from-db"], "needs --since"),
        ([], "either --input FILE or --from-db"),
    ],
)
def test_score_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["score", "--output", str(tmp_path / "o.csv"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
