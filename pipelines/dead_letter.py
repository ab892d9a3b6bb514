"""The dead-letter topic: what the consumers gave up on, and reading and retrying it.

A `DeadLetter` keeps the reason, the error, the attempts, where the record came from and
the record itself (value, key, headers). `retry` publishes the original record again to
its source topic: the consumers then analyze it like any other message, and one that was
analyzed meanwhile (retried twice, say) is a no-op there."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError
from sqlalchemy import select

from core.db.engine import create_engine, create_sessionmaker
from core.domain.analyses import MessageAnalysis
from core.settings import Settings
from pipelines.schemas import DeadLetter, InvalidPayload, NotAMessageEvent, decode_message_event
from pipelines.topics import Topics, partitions_of

logger = logging.getLogger(__name__)

# Reasons worth retrying by default: the payload was fine, the models or database were not.
RETRYABLE = ("enrichment_failed", "write_failed")


def make_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    """Idempotent, `acks=all`: what the outbox relay uses too."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


async def publish_dead_letters(
    producer: AIOKafkaProducer, topic: str, letters: list[DeadLetter]
) -> None:
    """Publish and wait until every letter is durably accepted."""
    futures = []
    for letter in letters:
        headers = [(k, v.encode()) for k, v in letter.headers.items()]
        headers.append(("dlq_reason", letter.reason.encode()))
        futures.append(
            await producer.send(
                topic,
                letter.model_dump_json().encode(),
                key=letter.key.encode() if letter.key else None,
                headers=headers,
            )
        )
    await asyncio.gather(*futures)


@dataclass(frozen=True)
class Entry:
    partition: int
    offset: int
    letter: DeadLetter

    @property
    def message_id(self) -> uuid.UUID | None:
        try:
            return decode_message_event(self.letter.original()).message_id
        except (InvalidPayload, NotAMessageEvent):
            return None


async def read_dead_letters(settings: Settings, *, timeout_s: float = 10.0) -> list[Entry]:
    """Every record on the dead-letter topic, oldest first per partition."""
    topics = Topics.of(settings)
    partitions = await partitions_of(settings.kafka.bootstrap_servers, topics.dead_letter)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topics.dead_letter, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        entries: list[Entry] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    try:
                        letter = DeadLetter.model_validate_json(record.value or b"{}")
                    except ValidationError:
                        logger.warning("not a dead letter at %s:%d", tp, record.offset)
                        continue
                    entries.append(Entry(tp.partition, record.offset, letter))
        return sorted(entries, key=lambda e: (e.letter.failed_at, e.partition, e.offset))
    finally:
        await consumer.stop()


async def analyzed_ids(settings: Settings, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these messages have an analysis now."""
    if not ids:
        return set()
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            found = await session.scalars(
                select(MessageAnalysis.message_id).where(MessageAnalysis.message_id.in_(ids))
            )
            return set(found.all())
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class RetryResult:
    republished: int
    already_analyzed: int
    left_alone: int  # other reasons


async def retry_dead_letters(
    settings: Settings,
    *,
    reasons: tuple[str, ...] = RETRYABLE,
    limit: int | None = None,
    dry_run: bool = False,
) -> RetryResult:
    """Publish the dead letters with one of `reasons` to their source topic again, except
    messages analyzed since."""
    entries = await read_dead_letters(settings)
    chosen = [(e, e.message_id) for e in entries if e.letter.reason in reasons]
    done = await analyzed_ids(settings, [i for _, i in chosen if i is not None])
    # One retry per message however many times it was dead-lettered.
    unique: dict[object, Entry] = {}
    for entry, message_id in chosen:
        if message_id not in done:
            unique.setdefault(message_id or (entry.partition, entry.offset), entry)
    todo = list(unique.values())[:limit] if limit else list(unique.values())
    if todo and not dry_run:
        producer = make_producer(settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    e.letter.source_topic,
                    e.letter.original(),
                    key=e.letter.key.encode() if e.letter.key else None,
                    headers=[
                        *((k, v.encode()) for k, v in e.letter.headers.items()),
                        ("dlq_retry_of", f"{e.partition}:{e.offset}".encode()),
                    ],
                )
                for e in todo
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
    return RetryResult(
        republished=len(todo),
        already_analyzed=sum(1 for _, i in chosen if i in done),
        left_alone=len(entries) - len(chosen),
    )
