"""Helpers for the training tests: a throwaway MLflow store beside the shared model cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.settings import Settings
from tests.factories import JWT_SECRET

# MLflow's own hints (integer columns, `Any` type hints) are not ours to fix.
MLFLOW_WARNINGS = "ignore::UserWarning:mlflow"


def training_settings(tmp: Path, models_cache: Path, *, migrate: bool = False) -> Settings:
    """Settings whose MLflow store and registry downloads live in `tmp`, while the encoder,
    embeddings and bundle heads come from the shared cache (each entry linked in, so the
    registry's downloads never land in the cache)."""
    models = tmp / "models"
    models.mkdir(parents=True)
    (models_cache / "embeddings").mkdir(exist_ok=True)  # new embeddings outlive the test
    for entry in models_cache.iterdir():
        if entry.name != "registry":
            (models / entry.name).symlink_to(entry)
    settings = Settings(data_dir=tmp, jwt_secret=JWT_SECRET)
    if migrate:
        from core.db.migrate import upgrade_async

        asyncio.run(upgrade_async(settings))
    return settings
