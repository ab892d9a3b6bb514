"""One Kafka consumer of `messages.received` in the enrichment group: micro-batches through
the `EnrichmentHandler`, offsets committed only after the batch's transaction.

    fetch ─► decode ─► enrich (≤ max_inflight_batches at once) ─► write ─► dead-letter ─► commit
                                                                  └──── in fetch order ────┘

- A micro-batch is up to `batch_max_messages` records: the first poll waits for data, then
  more records are gathered for at most `batch_max_wait_ms`.
- Up to `max_inflight_batches` batches are enriched at once (the encoder stays busy while
  a transaction commits); each waits for the one before it to be written and committed,
  so a partition's offsets only move forward over written batches. A new fetch waits for a
  free slot: the backpressure that bounds memory.
- Before partitions are revoked (a rebalance), the listener waits for every in-flight
  batch to be written and committed.
- Anything unexpected ends `run()` with the error, uncommitted: whoever runs the consumer
  (the actor supervisor) starts a new one, which resumes from the committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db.engine import create_engine, create_sessionmaker
from core.events.bus import ensure_topics
from core.settings import Settings
from pipelines.dead_letter import make_producer, publish_dead_letters
from pipelines.handler import Analyze, EnrichmentHandler, Outcome
from pipelines.items import WorkItem
from pipelines.schemas import DeadLetter, InvalidPayload, NotAMessageEvent, decode_message_event
from pipelines.stats import PipelineStats
from pipelines.topics import Topics

logger = logging.getLogger(__name__)

FIRST_POLL_MS = 1000


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EnrichmentConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Finish (write and commit) what was fetched before the partitions move.
        await self.owner.drain()
        logger.info("%s: partitions revoked: %s", self.owner.name, sorted(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.owner.rebalances += 1
        logger.info("%s: partitions assigned: %s", self.owner.name, sorted(assigned))


class EnrichmentConsumer:
    def __init__(
        self,
        settings: Settings,
        models: Analyze,
        *,
        name: str = "consumer",
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = settings.pipeline
        self.name = name
        self.topics = Topics.of(settings)
        self._engine: AsyncEngine | None = None
        if sessions is None:
            self._engine = create_engine(settings)
            sessions = create_sessionmaker(self._engine)
        self.handler = EnrichmentHandler(sessions, models, settings.pipeline)
        self.stats = PipelineStats()
        self.rebalances = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._slots = asyncio.Semaphore(self.pipeline.max_inflight_batches)
        self._inflight: set[asyncio.Task[None]] = set()
        self._last: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._loop_done = asyncio.Event()
        self._loop_done.set()
        self._failure: BaseException | None = None

    # ---------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        bootstrap = self.settings.kafka.bootstrap_servers
        await ensure_topics(
            bootstrap,
            self.topics.all(),
            partitions=self.settings.kafka.partitions,
            replication_factor=self.settings.kafka.replication_factor,
        )
        self._producer = make_producer(bootstrap)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=self.topics.group,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.pipeline.session_timeout_ms,
            heartbeat_interval_ms=max(self.pipeline.session_timeout_ms // 3, 300),
            max_partition_fetch_bytes=1024 * 1024,
        )
        self._consumer.subscribe([self.topics.received], listener=_Revocations(self))
        await self._consumer.start()

    async def run(self) -> None:
        """Consume until `stop()`; raises what made it stop otherwise."""
        assert self._consumer is not None, "start() first"
        self._loop_done.clear()
        try:
            await self._loop()
        finally:
            self._loop_done.set()
        await self.drain()
        if self._failure is not None:
            raise self._failure

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            await self._slots.acquire()
            try:
                records = await self._fetch()
            except BaseException:
                self._slots.release()
                raise
            if not records:
                self._slots.release()
                continue
            task = asyncio.create_task(self._process(records, self._last))
            self._last = task
            self._inflight.add(task)
            task.add_done_callback(self._finished)

    async def stop(self) -> None:
        """Finish in-flight batches, commit, leave the group (its partitions move at once)."""
        self._stopping.set()
        # The fetch loop ends within one poll; then nothing new is taken.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loop_done.wait(), FIRST_POLL_MS / 1000 * 5)
        await self.drain()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._engine is not None:
            await self._engine.dispose()

    async def drain(self) -> None:
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alive": self._consumer is not None and not self._stopping.is_set(),
            "partitions": self.assignment(),
            "rebalances": self.rebalances,
            "stats": self.stats.snapshot(),
        }

    def assignment(self) -> list[str]:
        if self._consumer is None:
            return []
        return sorted(f"{tp.topic}:{tp.partition}" for tp in self._consumer.assignment())

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            self._stopping.set()

    # --------------------------------------------------------------------- one batch
    async def _fetch(self) -> list[ConsumerRecord[bytes, bytes]]:
        assert self._consumer is not None
        limit = self.pipeline.batch_max_messages
        found = await self._consumer.getmany(timeout_ms=FIRST_POLL_MS, max_records=limit)
        records = [r for tp in sorted(found) for r in found[tp]]
        deadline = time.monotonic() + self.pipeline.batch_max_wait_ms / 1000
        while records and len(records) < limit and not self._stopping.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = await self._consumer.getmany(
                timeout_ms=left_ms, max_records=limit - len(records)
            )
            records.extend(r for tp in sorted(more) for r in more[tp])
        return records

    async def _process(
        self, records: list[ConsumerRecord[bytes, bytes]], previous: asyncio.Task[None] | None
    ) -> None:
        items, dead, by_id = self._decode(records)
        enriched, outcome = await self.handler.enrich(items)
        if previous is not None:
            # Written and committed in fetch order; a failed predecessor fails this too.
            await previous
        await self.handler.write(enriched, outcome)
        dead.extend(
            self._letter(by_id[f.item.message_id], f.reason, f.error, f.attempts)
            for f in outcome.failed
        )
        if dead:
            assert self._producer is not None
            await publish_dead_letters(self._producer, self.topics.dead_letter, dead)
        await self._commit(records)
        self._account(len(records), outcome, len(dead))

    def _decode(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[WorkItem], list[DeadLetter], dict[Any, ConsumerRecord[bytes, bytes]]]:
        items: list[WorkItem] = []
        dead: list[DeadLetter] = []
        by_id: dict[Any, ConsumerRecord[bytes, bytes]] = {}
        for record in records:
            headers = _headers(record)
            try:
                event = decode_message_event(
                    record.value or b"",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    timestamp_ms=record.timestamp,
                    headers=headers,
                )
            except InvalidPayload as exc:
                dead.append(self._letter(record, exc.reason, exc.error, 0))
                continue
            except NotAMessageEvent:
                self.stats.add("skipped")
                continue
            item = WorkItem.of(event)
            items.append(item)
            by_id[item.message_id] = record
        return items, dead, by_id

    def _letter(
        self, record: ConsumerRecord[bytes, bytes], reason: str, error: str, attempts: int
    ) -> DeadLetter:
        return DeadLetter.of(
            record.value or b"",
            reason=reason,
            error=error,
            attempts=attempts,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
            headers=_headers(record),
            consumer_group=self.topics.group,
        )

    async def _commit(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        assert self._consumer is not None
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        assigned = self._consumer.assignment()
        mine = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not mine:
            return
        try:
            await self._consumer.commit(mine)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved on: their new owner redelivers from the last commit, and
            # the rows written here make that a no-op.
            logger.info("%s: commit skipped after a rebalance (%s)", self.name, exc)

    def _account(self, size: int, outcome: Outcome, dead: int) -> None:
        result = outcome.result
        latencies = [
            result.committed_at - result.message_created[e.item.message_id].timestamp()
            for e in result.written
        ]
        kafka = [
            result.committed_at - e.item.timestamp_ms / 1000
            for e in result.written
            if e.item.timestamp_ms is not None
        ]
        self.stats.record_batch(size, len(result.written), latencies, kafka)
        self.stats.add("duplicates", result.duplicates + outcome.skipped)
        self.stats.add("dead_letters", dead)
        self.stats.add("retries", outcome.retries)


def _headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {key: value.decode("utf-8", "replace") for key, value in record.headers or ()}
