"""The Kafka enrichment pipeline: every message comes back analyzed, once.

What other code uses (the Ray actor pool is `pipelines.actors`: `start_pool`, `stop_pool`,
`find_pool`, `ServeEnricher`, `LocalAnalyzer`; it imports Ray)."""

from pipelines.consumer import EnrichmentConsumer
from pipelines.embedded import EmbeddedPipeline
from pipelines.handler import Analyze, EnrichmentHandler, Failure, Outcome
from pipelines.inprocess import Enrichment, start_in_process
from pipelines.items import Enriched, WorkItem, model_version
from pipelines.ops import PipelineMonitor, consumer_lag
from pipelines.replay import ReplaySummary, replay
from pipelines.schemas import DeadLetter, InvalidPayload, MessageEvent, decode_message_event
from pipelines.topics import Topics
from pipelines.writer import WriteResult, write_batch

__all__ = [
    "Analyze",
    "DeadLetter",
    "EmbeddedPipeline",
    "Enriched",
    "Enrichment",
    "EnrichmentConsumer",
    "EnrichmentHandler",
    "Failure",
    "InvalidPayload",
    "MessageEvent",
    "Outcome",
    "PipelineMonitor",
    "ReplaySummary",
    "Topics",
    "WorkItem",
    "WriteResult",
    "consumer_lag",
    "decode_message_event",
    "model_version",
    "replay",
    "start_in_process",
    "write_batch",
]
