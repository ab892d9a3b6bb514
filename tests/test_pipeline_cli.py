"""`relaydesk pipeline …`: help everywhere, `replay` end to end in embedded mode, and the
Kafka-only commands refusing clearly without Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from core.cli.main import app
from core.db.migrate import upgrade_async
from core.settings import Settings, get_settings
from pipelines import cli as pipeline_cli
from pipelines.cli import parse_since
from tests.conftest import serving
from tests.factories import JWT_SECRET, inbound, make_tenant
from tests.pipeline_doubles import StubModels

runner = CliRunner()

COMMANDS = [
    ["pipeline"],
    ["pipeline", "run"],
    ["pipeline", "status"],
    ["pipeline", "replay"],
    ["pipeline", "dlq"],
    ["pipeline", "dlq", "list"],
    ["pipeline", "dlq", "retry"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_pipeline_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_since_takes_a_time_or_an_age() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_since("6h", now) == now - timedelta(hours=6)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-04-30T10:00:00Z") == datetime(2026, 4, 30, 10, tzinfo=UTC)
    assert parse_since("2026-04-30") == datetime(2026, 4, 30, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_since("last tuesday")


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    data = tmp_path / "data"
    monkeypatch.setenv("RELAYDESK_DATA_DIR", str(data))
    monkeypatch.setenv("RELAYDESK_JWT_SECRET", JWT_SECRET)
    get_settings.cache_clear()
    settings = Settings(data_dir=data, jwt_secret=JWT_SECRET)
    asyncio.run(upgrade_async(settings))
    yield settings
    get_settings.cache_clear()


def test_replay_command_writes_new_rows_with_a_summary(
    embedded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def seed() -> str:
        async with serving("sqlite", embedded) as backend:
            t = await make_tenant(backend)
            for text in ("Where is my order?", "hello", "refund please"):
                await inbound(t, external_id="cli", text=text)
            return t.slug

    slug = asyncio.run(seed())
    monkeypatch.setattr(pipeline_cli, "_models", lambda _settings, _kind: StubModels("v7"))
    dry = runner.invoke(app, ["pipeline", "replay", "--since", "1h", "--tenant", slug, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: 3 message(s)" in dry.output
    assert "would write 3 new analysis row(s)" in dry.output
    result = runner.invoke(app, ["pipeline", "replay", "--since", "1h", "--tenant", slug])
    assert result.exit_code == 0, result.output
    assert "wrote 3 new analysis row(s); 0 already current; 0 failed" in result.output
    again = runner.invoke(app, ["pipeline", "replay", "--since", "1h"])
    assert "wrote 0 new analysis row(s); 3 already current" in again.output
    missing = runner.invoke(app, ["pipeline", "replay", "--since", "1h", "--tenant", "nope"])
    assert missing.exit_code == 1
    assert "no tenant 'nope'" in missing.output


@pytest.mark.parametrize("command", [["dlq", "list"], ["dlq", "retry"], ["run"]])
def test_kafka_commands_say_kafka_is_needed(embedded: Settings, command: list[str]) -> None:
    result = runner.invoke(app, ["pipeline", *command])
    assert result.exit_code == 2
    assert "Kafka is not configured" in result.output


def test_relaydesk_up_starts_no_pool_without_kafka(embedded: Settings) -> None:
    from serve.runner import start_pipeline

    assert start_pipeline(embedded) is None  # the API ingress enriches from its bus
