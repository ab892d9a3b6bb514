"""The consumer actor pool on Ray: N `ConsumerActor`s in one Kafka consumer group, watched
by a `PipelineSupervisor` that replaces any that dies or stops consuming.

Ray places the actors (`num_cpus` = `pipeline.consumer_cpus`, a small fraction: on two
cores Serve reserves most of the CPUs, and an actor that does not fit is never started), so
the same code runs on a laptop and on a cluster. Every actor is named
(`relaydesk-consumer-<slot>-<generation>`, namespace `relaydesk`) and shows in the Ray
dashboard; the supervisor is `relaydesk-pipeline`.

Each actor builds its model client from a picklable factory: `ServeEnricher()` (the
`Enricher` Serve deployment through a handle, production), or `LocalAnalyzer(settings)`
(the models in the actor's process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import ray
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError, RayActorError

from core.events.bus import ensure_topics
from core.settings import Settings
from models.service import Analysis, AnalyzeRequest
from pipelines.consumer import EnrichmentConsumer
from pipelines.handler import Analyze
from pipelines.stats import merge_snapshots
from pipelines.topics import Topics

logger = logging.getLogger(__name__)

NAMESPACE = "relaydesk"
SUPERVISOR_NAME = "relaydesk-pipeline"
STATUS_TIMEOUT_S = 30.0
CHECK_INTERVAL_S = 1.0


def _quiet_logs() -> None:
    # The pipeline's own lines at INFO; aiokafka's group chatter only when it matters.
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


class ModelsFactory(Protocol):
    def __call__(self) -> Analyze: ...


@dataclass(frozen=True)
class ServeEnricher:
    """The `Enricher` deployment of the running Serve app: one `analyze` call per batch."""

    app_name: str = "relaydesk"
    deployment: str = "Enricher"

    def __call__(self) -> Analyze:
        from ray import serve

        return _HandleAnalyze(serve.get_deployment_handle(self.deployment, app_name=self.app_name))


class _HandleAnalyze:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]:
        result: list[Analysis] = await self._handle.analyze.remote(requests)
        return result


@dataclass(frozen=True)
class LocalAnalyzer:
    """The models loaded in the consumer's own process (built beforehand)."""

    settings: Settings

    def __call__(self) -> Analyze:
        from models.analyzer import Analyzer
        from models.local import LocalModels

        settings = self.settings
        return LocalModels(
            lambda: Analyzer.load(settings.models_dir, settings.ai, build_if_missing=False)
        )


class ConsumerActor:
    """One `EnrichmentConsumer`, running from `start()` until `stop()` or a failure."""

    def __init__(self, settings: Settings, name: str, models: ModelsFactory) -> None:
        _quiet_logs()
        self.name = name
        self.consumer = EnrichmentConsumer(settings, models(), name=name)
        self._task: asyncio.Task[None] | None = None
        self.error: str | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.consumer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            logger.exception("%s stopped", self.name)

    async def status(self) -> dict[str, Any]:
        return {
            **self.consumer.status(),
            "pid": os.getpid(),
            "alive": self._task is not None and not self._task.done(),
            "error": self.error,
        }

    async def stop(self) -> dict[str, Any]:
        """Finish in-flight batches, commit, leave the group; returns the final status."""
        await self.consumer.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 30)
        return await self.status()


@dataclass
class _Slot:
    index: int
    generation: int = 0
    actor: ActorHandle[Any] | None = None
    name: str = ""
    restarts: int = 0
    last: dict[str, Any] = field(default_factory=dict)


class PipelineSupervisor:
    """Starts the consumer actors and replaces the ones that die (a crash, `ray.kill`, a
    lost node) or whose consumer stopped; scales the pool up and down."""

    def __init__(self, settings: Settings, models: ModelsFactory, consumers: int) -> None:
        _quiet_logs()
        self.settings = settings
        self.models = models
        self.target = consumers
        self._slots: dict[int, _Slot] = {}
        self._retired: list[dict[str, Any]] = []  # stats of actors that are gone
        self._watch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await ensure_topics(
            self.settings.kafka.bootstrap_servers,
            Topics.of(self.settings).all(),
            partitions=self.settings.kafka.partitions,
            replication_factor=self.settings.kafka.replication_factor,
        )
        await self.scale(self.target)
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_loop())

    async def scale(self, consumers: int) -> int:
        """Grow or shrink the pool to `consumers` actors (stopped ones leave the group
        cleanly, so their partitions move without waiting for a session timeout)."""
        async with self._lock:
            self.target = consumers
            for index in range(consumers):
                if index not in self._slots:
                    self._slots[index] = _Slot(index)
                    await self._spawn(self._slots[index])
            for index in sorted(self._slots, reverse=True):
                if index >= consumers:
                    await self._retire(self._slots.pop(index))
            return len(self._slots)

    async def _spawn(self, slot: _Slot) -> None:
        slot.generation += 1
        slot.name = f"relaydesk-consumer-{slot.index}-{slot.generation}"
        slot.actor = _CONSUMER.options(
            name=slot.name,
            namespace=NAMESPACE,
            num_cpus=self.settings.pipeline.consumer_cpus,
            max_restarts=0,
        ).remote(self.settings, slot.name, self.models)
        slot.last = {}
        await slot.actor.start.remote()
        logger.info("started %s", slot.name)

    async def _retire(self, slot: _Slot) -> None:
        if slot.actor is None:
            return
        try:
            final: dict[str, Any] = await asyncio.wait_for(
                slot.actor.stop.remote(), STATUS_TIMEOUT_S
            )
            slot.last = final
        except (RayActorError, TimeoutError, GetTimeoutError):
            logger.warning("%s did not stop cleanly", slot.name)
        if slot.last.get("stats"):
            self._retired.append(slot.last["stats"])
        ray.kill(slot.actor)
        slot.actor = None

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            async with self._lock:
                for slot in list(self._slots.values()):
                    await self._check(slot)

    async def _check(self, slot: _Slot) -> None:
        healthy = False
        try:
            assert slot.actor is not None
            status: dict[str, Any] = await asyncio.wait_for(
                slot.actor.status.remote(), STATUS_TIMEOUT_S
            )
            slot.last = status
            healthy = bool(status["alive"])
        except (RayActorError, TimeoutError, GetTimeoutError, AssertionError) as exc:
            logger.warning("%s is gone (%s)", slot.name, type(exc).__name__)
        if healthy:
            return
        logger.warning("replacing %s (%s)", slot.name, slot.last.get("error") or "dead")
        if slot.last.get("stats"):
            self._retired.append(slot.last["stats"])
        if slot.actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor)
        slot.restarts += 1
        try:
            await self._spawn(slot)
        except Exception:
            logger.exception("could not restart %s; trying again", slot.name)

    async def status(self) -> dict[str, Any]:
        consumers = [
            {
                "slot": slot.index,
                "name": slot.name,
                "alive": bool(slot.last.get("alive")),
                "pid": slot.last.get("pid"),
                "partitions": slot.last.get("partitions", []),
                "restarts": slot.restarts,
                "error": slot.last.get("error"),
            }
            for slot in sorted(self._slots.values(), key=lambda s: s.index)
        ]
        live = [slot.last["stats"] for slot in self._slots.values() if slot.last.get("stats")]
        return {
            "target": self.target,
            "consumers": consumers,
            "stats": merge_snapshots(live + self._retired),
        }

    async def refresh(self) -> dict[str, Any]:
        """`status()` after asking every actor now (tests, the CLI)."""
        async with self._lock:
            for slot in list(self._slots.values()):
                if slot.actor is None:
                    continue
                with contextlib.suppress(RayActorError, TimeoutError, GetTimeoutError):
                    slot.last = await asyncio.wait_for(slot.actor.status.remote(), 10)
        return await self.status()

    async def actors(self) -> dict[str, ActorHandle[Any]]:
        return {s.name: s.actor for s in self._slots.values() if s.actor is not None}

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self.scale(0)


_CONSUMER: Any = ray.remote(ConsumerActor)
_SUPERVISOR: Any = ray.remote(PipelineSupervisor)


def start_pool(
    settings: Settings, models: ModelsFactory, consumers: int | None = None
) -> ActorHandle[Any]:
    """Start the supervisor (and through it the consumers) on the connected Ray; returns
    its handle. It lives as long as the calling driver."""
    supervisor: ActorHandle[Any] = _SUPERVISOR.options(
        name=SUPERVISOR_NAME, namespace=NAMESPACE, num_cpus=0, get_if_exists=False
    ).remote(settings, models, consumers or settings.pipeline.consumers)
    ray.get(supervisor.start.remote())
    return supervisor


def find_pool() -> ActorHandle[Any] | None:
    """The running supervisor, if this process is connected to its Ray."""
    try:
        handle: ActorHandle[Any] = ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE)
        return handle
    except ValueError:
        return None


def stop_pool(supervisor: ActorHandle[Any], timeout_s: float = 60.0) -> None:
    """Stop every consumer cleanly, then the supervisor."""
    try:
        ray.get(supervisor.stop.remote(), timeout=timeout_s)
    finally:
        ray.kill(supervisor)
