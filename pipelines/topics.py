"""The pipeline's topic names under the configured prefix, and its consumer group."""

from __future__ import annotations

from dataclasses import dataclass

from core.events.types import Topic
from core.settings import Settings


@dataclass(frozen=True)
class Topics:
    prefix: str
    group: str

    @classmethod
    def of(cls, settings: Settings) -> Topics:
        prefix = settings.kafka.topic_prefix
        # The group carries the prefix too: environments sharing a broker stay apart.
        return cls(prefix=prefix, group=prefix + settings.pipeline.consumer_group)

    def name(self, topic: Topic) -> str:
        return self.prefix + topic.value

    @property
    def received(self) -> str:
        return self.name(Topic.MESSAGES_RECEIVED)

    @property
    def analyzed(self) -> str:
        return self.name(Topic.MESSAGES_ANALYZED)

    @property
    def dead_letter(self) -> str:
        return self.name(Topic.DEAD_LETTER)

    def all(self) -> list[str]:
        return [self.name(topic) for topic in Topic]


async def partitions_of(bootstrap_servers: str, topic: str) -> list[int]:
    """The topic's partition numbers; none if it does not exist."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"]
        for t in described
        if t["topic"] == topic and t["error_code"] == 0
        for p in t["partitions"]
    )
