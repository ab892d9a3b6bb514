"""Settings: one validated object; production refuses the embedded default secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.settings import DEFAULT_JWT_SECRET, Mode, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("RELAYDESK_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    "external",
    [
        {"database_url": "postgresql+asyncpg://u:p@127.0.0.1:5432/db"},
        {"redis_url": "redis://127.0.0.1:6379/0"},
        {"kafka_bootstrap_servers": "127.0.0.1:9092"},
    ],
    ids=["database", "redis", "kafka"],
)
def test_production_refuses_the_default_jwt_secret(
    external: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="RELAYDESK_JWT_SECRET"):
        Settings(data_dir=tmp_path, **external)
    with pytest.raises(ValidationError, match="RELAYDESK_JWT_SECRET"):
        Settings(data_dir=tmp_path, jwt_secret=DEFAULT_JWT_SECRET, **external)
    settings = Settings(data_dir=tmp_path, jwt_secret="p" * 32, **external)
    assert settings.mode is Mode.PRODUCTION


def test_production_database_url_is_used_verbatim(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://u:p@127.0.0.1:5432/db"
    settings = Settings(data_dir=tmp_path, database_url=url, jwt_secret="p" * 32)
    assert settings.database_dsn == url
    assert settings.database.url == url


def test_short_secret_is_refused_in_every_mode(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(data_dir=tmp_path, jwt_secret="short")


def test_embedded_mode_uses_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.mode is Mode.EMBEDDED
    expected = (tmp_path / "data" / "relaydesk.db").resolve()
    assert settings.database_dsn == f"sqlite+aiosqlite:///{expected}"
    # The default secret is tolerated only here, where nothing listens beyond the machine.
    assert settings.auth.jwt_secret.get_secret_value() == DEFAULT_JWT_SECRET


def test_environment_short_and_nested_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RELAYDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAYDESK_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("RELAYDESK_JWT_SECRET", "e" * 20)
    monkeypatch.setenv("RELAYDESK_API__RATE_LIMIT_PER_MINUTE", "7")
    settings = Settings()
    assert settings.redis.url == "redis://127.0.0.1:1/0"
    assert settings.mode is Mode.PRODUCTION
    assert settings.api.rate_limit_per_minute == 7
    assert settings.auth.jwt_secret.get_secret_value() == "e" * 20
    assert settings.database_dsn.startswith("sqlite+aiosqlite:///")
