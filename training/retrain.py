"""The optional retrain trigger: after `RELAYDESK_TRAINING__RETRAIN_AFTER_CORRECTIONS` new
corrections of a task (every tenant together: the heads are shared), start
`relaydesk train <task> --include-feedback`. Off (0) by default.

The check runs after a request that stored a correction has committed: one count query per
corrected task, nothing at all when the trigger is off. `retrain_marks` holds, per task,
the newest correction the last start counted; claiming the mark is a compare-and-set on its
run count, so two API processes that both see the threshold start one run.

The run is a detached subprocess of the API process. With `RELAYDESK_RAY_ADDRESS` set the
command gets `--address`, so `relaydesk train` submits itself to the cluster as a Ray Job
instead of training inside the API's machine."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.types import utcnow
from core.domain.feedback import AnalysisFeedback, RetrainMark
from core.settings import Settings

logger = logging.getLogger(__name__)

Launcher = Callable[[str, Settings], None]


def train_command(task: str, settings: Settings) -> list[str]:
    command = [sys.executable, "-m", "core.cli.main", "train", task, "--include-feedback"]
    if settings.ray.address:
        command += ["--address", settings.ray.address]
    return command


def launch(task: str, settings: Settings) -> None:
    """Start the training run in the background, its output in
    `<data_dir>/logs/retrain-<task>-<time>.log`."""
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"retrain-{task}-{utcnow():%Y%m%dT%H%M%S}.log"
    with path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - a fixed command of this program
            train_command(task, settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # Reaped by a thread of its own, so the finished run leaves no zombie behind.
    threading.Thread(target=process.wait, name=f"retrain-{task}", daemon=True).start()
    logger.info("started retraining %s (pid %d), log in %s", task, process.pid, path)


async def _new_corrections(
    session: AsyncSession, task: str, after: datetime | None
) -> tuple[int, datetime | None]:
    F = AnalysisFeedback
    query = select(func.count(), func.max(F.created_at)).where(F.task == task, ~F.confirmed)
    if after is not None:
        query = query.where(F.created_at > after)
    count, newest = (await session.execute(query)).one()
    return int(count), newest


async def _claim(
    session: AsyncSession, task: str, mark: RetrainMark | None, newest: datetime
) -> bool:
    """Move the task's mark to `newest`; False when another process moved it first."""
    try:
        if mark is None:
            await session.execute(insert(RetrainMark).values(task=task, marked_at=newest, runs=1))
        else:
            moved = await session.execute(
                update(RetrainMark)
                .where(RetrainMark.task == task, RetrainMark.runs == mark.runs)
                .values(marked_at=newest, runs=mark.runs + 1)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return False
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True


async def after_feedback(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tasks: Iterable[str],
    launcher: Launcher | None = None,
) -> list[str]:
    """Start a run for each of `tasks` that has reached the threshold; returns them."""
    threshold = settings.training.retrain_after_corrections
    if threshold <= 0:
        return []
    started = []
    async with sessions() as session:
        for task in sorted(set(tasks)):
            mark = await session.get(RetrainMark, task)
            count, newest = await _new_corrections(session, task, mark.marked_at if mark else None)
            if count < threshold or newest is None:
                continue
            if await _claim(session, task, mark, newest):
                try:
                    (launcher or launch)(task, settings)
                except OSError:
                    logger.exception("could not start retraining %s", task)
                    continue
                started.append(task)
    return started
