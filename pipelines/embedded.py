"""The pipeline without Kafka: the same handler behind the in-process event bus.

The in-process bus delivers `message.received` / `message.sent` while the outbox relay
still holds its transaction (on SQLite, the database's write lock), so the subscriber only
queues the message; a worker task takes micro-batches off the queue and runs the
`EnrichmentHandler` after the relay has committed. On start, and after a failure, the
worker also picks up every stored message that has no analysis yet (`backfill`): a message
whose outbox row was published while the process was down, or that was queued when it
stopped, is enriched on the next start, so nothing is lost across restarts.

A message the handler gives up on is logged and published on the bus's `dead-letter` topic
(embedded mode keeps no dead-letter log beyond the process)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.domain.analyses import MessageAnalysis
from core.domain.conversations import Message
from core.events.bus import BusMessage, InMemoryEventBus
from core.events.types import Topic
from core.settings import Settings
from pipelines.handler import Analyze, EnrichmentHandler, Outcome
from pipelines.items import STORED_COLUMNS, WorkItem
from pipelines.schemas import DeadLetter, InvalidPayload, NotAMessageEvent, decode_message_event
from pipelines.stats import PipelineStats

logger = logging.getLogger(__name__)

BACKFILL_PAGE = 500


class EmbeddedPipeline:
    name = "embedded"

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        models: Analyze,
        *,
        bus: InMemoryEventBus | None = None,
        on_written: Callable[[], None] | None = None,
        catch_up: bool = True,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.bus = bus
        self.handler = EnrichmentHandler(sessions, models, settings.pipeline)
        self.stats = PipelineStats()
        self.dead_letters: list[DeadLetter] = []
        self._queue: asyncio.Queue[WorkItem] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_written = on_written
        self._catch_up = catch_up
        if bus is not None:
            bus.subscribe(Topic.MESSAGES_RECEIVED.value, self.on_message)

    # ------------------------------------------------------------------ subscriber
    async def on_message(self, message: BusMessage) -> None:
        try:
            event = decode_message_event(message.value, headers=dict(message.headers))
        except NotAMessageEvent:
            return
        except InvalidPayload as exc:
            await self._dead(
                DeadLetter.of(
                    _json(message.value),
                    reason=exc.reason,
                    error=exc.error,
                    source_topic=message.topic,
                    key=message.key,
                    headers=dict(message.headers),
                )
            )
            return
        self._idle.clear()
        self._queue.put_nowait(WorkItem.of(event))

    # ----------------------------------------------------------------------- worker
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="embedded-enrichment")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alive": self._task is not None and not self._task.done(),
            "partitions": [],
            "queued": self._queue.qsize(),
            "stats": self.stats.snapshot(),
        }

    async def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Until everything queued so far is written (tests, benchmarks)."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def _run(self) -> None:
        backfill = self._catch_up
        while True:
            try:
                if backfill:
                    await self.backfill()
                    backfill = False
                await self._one_batch()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("embedded enrichment failed; catching up from the database")
                backfill = True
                await asyncio.sleep(1.0)

    async def _one_batch(self) -> None:
        pipeline = self.settings.pipeline
        items = [await self._queue.get()]
        deadline = time.monotonic() + pipeline.batch_max_wait_ms / 1000
        while len(items) < pipeline.batch_max_messages:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        await self._handle(items)
        if self._queue.empty():
            self._idle.set()

    async def _handle(self, items: list[WorkItem]) -> Outcome:
        outcome = await self.handler.handle(items)
        result = outcome.result
        latencies = [
            result.committed_at - result.message_created[e.item.message_id].timestamp()
            for e in result.written
        ]
        self.stats.record_batch(len(items), len(result.written), latencies, [])
        self.stats.add("duplicates", result.duplicates + outcome.skipped)
        self.stats.add("retries", outcome.retries)
        for failure in outcome.failed:
            await self._dead(
                DeadLetter.of(
                    failure.item.text,
                    reason=failure.reason,
                    error=failure.error,
                    attempts=failure.attempts,
                    source_topic=Topic.MESSAGES_RECEIVED.value,
                    key=str(failure.item.conversation_id),
                    headers={"message_id": str(failure.item.message_id)},
                )
            )
        if result.written and self._on_written is not None:
            self._on_written()
        return outcome

    async def backfill(self, tenant_id: uuid.UUID | None = None) -> int:
        """Enrich every stored message (of one tenant, if given) without an analysis;
        returns how many were sent to the models."""
        sent = 0
        after = uuid.UUID(int=0)
        scope = [] if tenant_id is None else [Message.tenant_id == tenant_id]
        while True:
            async with self.sessions() as session:
                rows = (
                    await session.execute(
                        select(*STORED_COLUMNS)
                        .where(
                            *scope,
                            Message.id > after,
                            ~select(MessageAnalysis.id)
                            .where(MessageAnalysis.message_id == Message.id)
                            .exists(),
                        )
                        .order_by(Message.id)
                        .limit(BACKFILL_PAGE)
                    )
                ).all()
            if not rows:
                return sent
            after = rows[-1].id
            items = [WorkItem.of_row(r) for r in rows]
            size = self.settings.pipeline.batch_max_messages
            for start in range(0, len(items), size):
                await self._handle(items[start : start + size])
            sent += len(items)

    async def _dead(self, letter: DeadLetter) -> None:
        logger.warning("dead letter (%s): %s", letter.reason, letter.error)
        self.stats.add("dead_letters")
        self.dead_letters = [*self.dead_letters[-999:], letter]
        if self.bus is not None:
            await self.bus.publish_batch(
                [
                    BusMessage(
                        Topic.DEAD_LETTER.value,
                        letter.key or "",
                        letter.model_dump(mode="json"),
                        {"dlq_reason": letter.reason},
                    )
                ]
            )


def _json(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
