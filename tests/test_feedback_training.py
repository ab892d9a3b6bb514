"""The feedback loop's training side on both backends: `training.feedback` returns the latest
label per message, the retrain trigger fires at N new corrections (never when off), and
migration 0005 matches the ORM and downgrades cleanly."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, delete, inspect

from core.db.base import Base
from core.db.migrate import alembic_config, upgrade
from core.db.types import utcnow
from core.domain.feedback import RetrainMark
from core.settings import Settings
from tests.factories import Backend, TenantCtx, inbound
from tests.feedback_helpers import analyse_all, correct, feedback_rows
from training import retrain
from training.feedback import FeedbackExample, load_feedback, load_feedback_sync

FEEDBACK_TABLES = {"analysis_feedback", "retrain_marks"}


async def messages(t: TenantCtx, count: int, prefix: str = "Where is my order") -> list[str]:
    ids = []
    for n in range(count):
        received = await inbound(t, external_id=f"{prefix}-{n}", text=f"{prefix} {n}?")
        ids.append(received["message"]["id"])
    await analyse_all(t)
    return ids


async def test_load_feedback_returns_the_latest_label_per_message(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    sessions = tenant.backend.runtime.sessions
    first, second = await messages(tenant, 2)
    await correct(tenant, first, {"intent": "billing", "urgency": "high"})
    await correct(tenant, first, {"intent": "cancel"})
    await correct(tenant, second, {"intent": "order_status"})  # a confirmation is an example
    (elsewhere,) = await messages(other_tenant, 1)
    await correct(other_tenant, elsewhere, {"intent": "privacy"})

    mine = await load_feedback(sessions, "intent", tenant_id=uuid.UUID(tenant.id))
    assert [(e.text, e.label) for e in mine] == [
        ("Where is my order 0?", "cancel"),
        ("Where is my order 1?", "order_status"),
    ]
    example = mine[0]
    assert isinstance(example, FeedbackExample)
    assert (example.task, example.tenant_id, example.language, example.model_version) == (
        "intent",
        uuid.UUID(tenant.id),
        "en",
        "v1",
    )
    assert example.created_at.tzinfo is not None
    urgency = await load_feedback(sessions, "urgency", tenant_id=uuid.UUID(tenant.id))
    assert [(e.text, e.label) for e in urgency] == [("Where is my order 0?", "high")]

    everyone = await load_feedback(sessions, "intent")
    labels = {(e.tenant_id, e.label) for e in everyone}
    assert {(uuid.UUID(tenant.id), "cancel"), (uuid.UUID(other_tenant.id), "privacy")} <= labels

    rows = await feedback_rows(tenant)
    since = max(r.created_at for r in rows if r.label == "cancel")
    recent = await load_feedback(sessions, "intent", tenant_id=uuid.UUID(tenant.id), since=since)
    assert [e.label for e in recent] == ["cancel", "order_status"]
    later = since + timedelta(days=1)
    assert await load_feedback(sessions, "intent", since=later) == []

    # The synchronous form, as a training job calls it (its own engine and event loop).
    synced = await asyncio.to_thread(
        load_feedback_sync, tenant.backend.settings, "intent", tenant_id=uuid.UUID(tenant.id)
    )
    assert synced == mine
    with pytest.raises(ValueError, match="no feedback is kept for task 'churn'"):
        await load_feedback(sessions, "churn")


class Launches:
    def __init__(self) -> None:
        self.tasks: list[str] = []

    def __call__(self, task: str, settings: Settings) -> None:
        self.tasks.append(task)


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> Launches:
    fake = Launches()
    monkeypatch.setattr(retrain, "launch", fake)
    return fake


async def restart_marks(backend: Backend) -> None:
    """Corrections other tests stored do not count: every task's window starts now."""
    async with backend.runtime.sessions() as session:
        await session.execute(delete(RetrainMark))
        now = utcnow()
        session.add_all(RetrainMark(task=t, marked_at=now, runs=0) for t in retrain_tasks())
        await session.commit()
    await asyncio.sleep(0.002)  # later corrections are strictly newer


def retrain_tasks() -> tuple[str, ...]:
    return ("intent", "sentiment", "urgency")


async def test_the_trigger_fires_at_n_corrections_and_not_before(
    tenant: TenantCtx, launches: Launches, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tenant.backend
    monkeypatch.setattr(backend.settings.training, "retrain_after_corrections", 3)
    await restart_marks(backend)
    ids = await messages(tenant, 6)

    await correct(tenant, ids[0], {"intent": "billing"})
    await correct(tenant, ids[1], {"intent": "order_status"})  # a confirmation: not counted
    await correct(tenant, ids[2], {"intent": "cancel", "sentiment": "negative"})
    assert launches.tasks == []
    await correct(tenant, ids[3], {"intent": "billing"})
    assert launches.tasks == ["intent"]
    # A new window starts: two more corrections are not enough.
    await correct(tenant, ids[4], {"intent": "cancel"})
    await correct(tenant, ids[5], {"intent": "cancel"})
    assert launches.tasks == ["intent"]
    await correct(tenant, ids[0], {"intent": "privacy", "sentiment": "positive"})
    assert launches.tasks == ["intent", "intent"]
    await correct(tenant, ids[1], {"sentiment": "positive"})
    assert launches.tasks == ["intent", "intent", "sentiment"]
    async with backend.runtime.sessions() as session:
        mark = await session.get_one(RetrainMark, "intent")
    assert mark.runs == 2

    # Asked again with nothing new: no second start.
    started = await retrain.after_feedback(
        backend.settings, backend.runtime.sessions, ["intent", "sentiment"]
    )
    assert started == []


async def test_the_trigger_never_fires_when_off(
    tenant: TenantCtx, launches: Launches, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = tenant.backend
    assert backend.settings.training.retrain_after_corrections == 0
    await restart_marks(backend)
    ids = await messages(tenant, 3)
    for message_id in ids:
        await correct(tenant, message_id, {"intent": "billing", "urgency": "urgent"})
    assert launches.tasks == []
    off = await retrain.after_feedback(backend.settings, backend.runtime.sessions, ["intent"])
    assert off == []
    # The same corrections reach a threshold of 3 once it is set.
    monkeypatch.setattr(backend.settings.training, "retrain_after_corrections", 3)
    on = await retrain.after_feedback(
        backend.settings, backend.runtime.sessions, ["intent", "urgency"], launches
    )
    assert on == ["intent", "urgency"]


async def test_a_mark_moved_by_another_process_is_not_claimed(backend: Backend) -> None:
    await restart_marks(backend)
    async with backend.runtime.sessions() as session:
        stale = RetrainMark(task="urgency", marked_at=utcnow(), runs=5)
        assert not await retrain._claim(session, "urgency", stale, utcnow())
        current = await session.get_one(RetrainMark, "urgency")
        assert await retrain._claim(session, "urgency", current, utcnow())
    async with backend.runtime.sessions() as session:
        assert (await session.get_one(RetrainMark, "urgency")).runs == 1


def test_the_command_and_the_launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 32)
    command_line = retrain.train_command("urgency", settings)
    assert command_line[1:] == ["-m", "core.cli.main", "train", "urgency", "--include-feedback"]
    cluster = Settings(data_dir=tmp_path, jwt_secret="x" * 32, ray_address="ray://head:10001")
    assert retrain.train_command("intent", cluster)[-2:] == ["--address", "ray://head:10001"]

    def echo(task: str, _settings: Settings) -> list[str]:
        return [sys.executable, "-c", f"print('training {task}')"]

    monkeypatch.setattr(retrain, "train_command", echo)
    retrain.launch("intent", settings)
    logs = list((tmp_path / "logs").glob("retrain-intent-*.log"))
    assert len(logs) == 1
    deadline = time.monotonic() + 30
    while "training intent" not in logs[0].read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logs[0].read_text().strip() == "training intent"


def _drift(connection: Connection) -> list[Any]:
    """Differences between the migrated schema and the ORM in the feedback tables."""
    found = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return [d for d in found if any(name in str(d) for name in FEEDBACK_TABLES)]


async def test_migration_0005_matches_the_models(backend: Backend) -> None:
    async with backend.runtime.engine.connect() as connection:
        assert await connection.run_sync(_drift) == []
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert names >= FEEDBACK_TABLES


def test_migration_0005_downgrades_and_upgrades(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 32)
    upgrade(settings)
    config = alembic_config(settings)
    command.downgrade(config, "0004")
    engine = create_engine(f"sqlite:///{tmp_path / 'relaydesk.db'}")
    try:
        with engine.connect() as connection:
            assert not FEEDBACK_TABLES & set(inspect(connection).get_table_names())
        command.upgrade(config, "head")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) >= FEEDBACK_TABLES
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning:mlflow")
async def test_corrections_join_the_next_training_set(
    tenant: TenantCtx, tmp_path: Path, models_cache: Path
) -> None:
    """Corrections stored through the API reach `relaydesk train intent --include-feedback`:
    the training rows grow by the examples, the frozen test set does not."""
    from models.taxonomy import INTENT_LABELS
    from tests.training_support import training_settings
    from training.jobs import IntentConfig, run_training

    ids = await messages(tenant, 3, prefix="Please stop my plan")
    for message_id in ids:
        await correct(tenant, message_id, {"intent": "cancel"})
    database = tenant.backend.settings.database.model_copy(
        update={"url": tenant.backend.settings.database_dsn}
    )
    settings = training_settings(tmp_path, models_cache).model_copy(update={"database": database})
    stored = await asyncio.to_thread(load_feedback_sync, settings, "intent")
    assert len(stored) >= 3  # other tests' tenants may have added theirs
    assert sum(e.text.startswith("Please stop my plan") for e in stored) == 3

    config = IntentConfig(max_rows=300, promote=False)
    base = await asyncio.to_thread(run_training, "intent", config, settings)
    fed = await asyncio.to_thread(
        run_training, "intent", config.model_copy(update={"include_feedback": True}), settings
    )
    # a tenant's own intents (other tests add some) stay out of the shared head
    usable = sum(e.label in INTENT_LABELS for e in stored)
    assert fed.rows["feedback"] == usable
    assert fed.rows["train"] + fed.rows["validation"] == (
        base.rows["train"] + base.rows["validation"] + usable
    )
    assert fed.rows["test"] == base.rows["test"]
