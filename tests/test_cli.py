"""The `relaydesk` command, end to end in embedded mode (SQLite in a temporary data dir)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.settings import get_settings

runner = CliRunner()

COMMANDS = [
    [],
    ["up"],
    ["db"],
    ["db", "upgrade"],
    ["bootstrap"],
    ["users"],
    ["users", "create"],
    ["api-keys"],
    ["api-keys", "create"],
    ["demo"],
    ["demo", "seed"],
    ["channels"],
    ["channels", "poll-email"],
    ["channels", "deliver"],
    ["channels", "sync-templates"],
]


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in (
        "RELAYDESK_DATABASE_URL",
        "RELAYDESK_REDIS_URL",
        "RELAYDESK_KAFKA_BOOTSTRAP_SERVERS",
        "RELAYDESK_JWT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RELAYDESK_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def test_upgrade_bootstrap_users_and_keys(embedded: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "embedded" in result.output
    db = embedded / "relaydesk.db"
    assert db.exists()

    result = runner.invoke(
        app,
        [
            "bootstrap",
            "--tenant",
            "Acme Support",
            "--admin-email",
            "boss@acme.example",
            "--admin-password",
            "correct-horse",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "acme-support" in result.output
    key_line = next(line for line in result.output.splitlines() if line.startswith("API key:"))
    assert key_line.split()[-1].startswith("rdk_")

    again = runner.invoke(
        app,
        [
            "bootstrap",
            "--tenant",
            "Acme Support",
            "--admin-email",
            "x@acme.example",
            "--admin-password",
            "correct-horse",
        ],
    )
    assert again.exit_code == 1
    assert "already exists" in again.output

    result = runner.invoke(
        app,
        [
            "users",
            "create",
            "--tenant",
            "acme-support",
            "--email",
            "ana@acme.example",
            "--name",
            "Ana",
            "--role",
            "viewer",
            "--password",
            "long-enough-pw",
        ],
    )
    assert result.exit_code == 0, result.output
    assert _rows(db, "SELECT role FROM users WHERE email = 'ana@acme.example'") == [("viewer",)]

    result = runner.invoke(app, ["api-keys", "create", "--tenant", "acme-support", "--name", "crm"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("rdk_")
    # Only the hash is stored: the printed secret appears nowhere in the database.
    secret = result.stdout.strip().split("_", 2)[2]
    assert not _rows(db, f"SELECT 1 FROM api_keys WHERE key_hash = '{secret}'")
    assert len(_rows(db, "SELECT id FROM api_keys")) == 2

    missing = runner.invoke(app, ["api-keys", "create", "--tenant", "nope", "--name", "crm"])
    assert missing.exit_code == 1
    assert "not found" in missing.output


def test_bad_role_is_a_usage_error(embedded: Path) -> None:
    result = runner.invoke(
        app,
        [
            "users",
            "create",
            "--tenant",
            "t",
            "--email",
            "a@b.example",
            "--name",
            "A",
            "--role",
            "superuser",
            "--password",
            "x" * 10,
        ],
    )
    assert result.exit_code == 2


def test_first_start_seeds_demo_once(embedded: Path) -> None:
    import asyncio

    from core.cli.jobs import first_start

    settings = get_settings()
    lines = asyncio.run(first_start(settings, demo=True))
    assert any("admin API key" in line for line in lines)
    credentials = embedded / "demo-credentials.txt"
    assert credentials.stat().st_mode & 0o777 == 0o600
    db = embedded / "relaydesk.db"
    statuses = {row[0] for row in _rows(db, "SELECT DISTINCT status FROM tickets")}
    assert statuses == {"new", "open", "pending", "on_hold", "solved", "closed"}
    languages_seen = _rows(db, "SELECT count(DISTINCT channel_id) FROM conversations")
    assert languages_seen[0][0] >= 4

    second = asyncio.run(first_start(settings, demo=True))
    assert not any("admin API key" in line for line in second)
    assert len(_rows(db, "SELECT id FROM tenants")) == 1


def test_production_mode_refuses_default_secret(
    embedded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYDESK_DATABASE_URL", "postgresql+asyncpg://u:p@127.0.0.1:1/x")
    get_settings.cache_clear()
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "RELAYDESK_JWT_SECRET" in result.output
