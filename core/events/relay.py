"""Publishes outbox rows to the event bus in order, then marks them published.

A crash between publish and mark publishes those rows again on restart: consumers key
their effects by event id, which makes the duplicate harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.engine import dialect_name
from core.db.types import utcnow
from core.events.bus import BusMessage, EventBus
from core.events.store import OutboxRecord

logger = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Called after a commit that wrote outbox rows, so they go out without waiting."""
        self._wake.set()

    async def drain_once(self) -> int:
        async with self.sessions() as session, session.begin():
            query = (
                select(OutboxRecord)
                .where(OutboxRecord.published_at.is_(None))
                .order_by(OutboxRecord.id)
                .limit(self.batch_size)
            )
            if dialect_name(session) == "postgresql":
                # Several relays may run; each takes rows the others have not locked.
                query = query.with_for_update(skip_locked=True)
            rows = list((await session.scalars(query)).all())
            if not rows:
                return 0
            await self.bus.publish_batch(
                [BusMessage(r.topic, r.key, r.payload, dict(r.headers)) for r in rows]
            )
            await session.execute(
                update(OutboxRecord)
                .where(OutboxRecord.id.in_([r.id for r in rows]))
                .values(published_at=utcnow(), attempts=OutboxRecord.attempts + 1)
            )
            return len(rows)

    async def drain(self) -> int:
        total = 0
        while sent := await self.drain_once():
            total += sent
        return total

    async def run(self) -> None:
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox relay failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
            self._wake.clear()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
