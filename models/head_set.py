"""The heads an analyzer serves, as one immutable object, and how a set is resolved from
versions in the model registry.

A `HeadSet` holds the intent, sentiment and urgency heads with the version label of each
(`relaydesk-intent/3` for a registered version, `bundle/<heads_key>` for the bundle's heads
before anything is registered) and, optionally, `Challengers` run in shadow beside them. An
analyzer swaps its set with one assignment: a request that took the old set finishes on it,
the next one gets the new set, and none sees a mix.

`resolve_heads` builds a new set from a spec such as `{"intent": "4", "urgency": "champion"}`
(task → registry version or alias; a task left out keeps the bundle's head) without touching
the set being served; any failure raises `HeadLoadError` and changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from models.bundle import ModelBundle
from models.encoder import Encoder
from models.heads import CalibratedHead, UrgencyModel

logger = logging.getLogger(__name__)

HEAD_TASKS = ("intent", "sentiment", "urgency")
# An alias that may name nothing yet: until a first version is registered the bundle serves.
CHAMPION = "champion"


class HeadLoadError(RuntimeError):
    """A requested head version cannot be served; the message says which and why."""


class RegisteredHead(Protocol):
    """What `models.registry.ModelRef` offers that loading needs."""

    @property
    def task(self) -> str: ...

    @property
    def label(self) -> str: ...


class HeadSource(Protocol):
    """The part of `models.registry.ModelRegistry` that loading needs."""

    def get(self, task: str, alias_or_version: str) -> RegisteredHead | None: ...

    def fetch(self, ref: RegisteredHead) -> Path: ...


def _frozen(versions: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(versions))


@dataclass(frozen=True, slots=True)
class Challengers:
    """Heads run in shadow: on the same embedding as the served ones, never answering."""

    intent: CalibratedHead | None = None
    sentiment: CalibratedHead | None = None
    urgency: UrgencyModel | None = None
    versions: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def tasks(self) -> tuple[str, ...]:
        return tuple(t for t in HEAD_TASKS if t in self.versions)


@dataclass(frozen=True, slots=True)
class HeadSet:
    """The served heads and their version labels; `unavailable` says why heads are None."""

    intent: CalibratedHead | None
    sentiment: CalibratedHead | None
    urgency: UrgencyModel | None
    versions: Mapping[str, str]
    unavailable: str | None = None
    shadow: Challengers | None = None

    @property
    def complete(self) -> bool:
        return self.intent is not None and self.sentiment is not None and self.urgency is not None

    @classmethod
    def from_bundle(cls, bundle: ModelBundle) -> HeadSet:
        label = f"bundle/{bundle.heads_key}"
        present = (bundle.intent, bundle.sentiment, bundle.urgency)
        versions = {t: label for t, head in zip(HEAD_TASKS, present, strict=True) if head}
        return cls(
            bundle.intent,
            bundle.sentiment,
            bundle.urgency,
            _frozen(versions),
            bundle.unavailable,
        )

    def describe(self) -> dict[str, object]:
        """Plain data for status answers: served versions and shadowed ones."""
        return {
            "versions": dict(self.versions),
            "shadow": dict(self.shadow.versions) if self.shadow else {},
            "unavailable": self.unavailable,
        }


def _load_head(
    source: HeadSource, encoder: Encoder, task: str, wanted: str
) -> tuple[CalibratedHead | None, str | None]:
    """The registered head `wanted` names, with its label; (None, None) when `wanted` is the
    champion alias and no champion exists yet (the bundle serves)."""
    try:
        ref = source.get(task, wanted)
    except Exception as exc:  # a registry is a remote service: report whatever it raised
        raise HeadLoadError(f"{task}: cannot read the model registry: {exc}") from exc
    if ref is None:
        if wanted == CHAMPION:
            return None, None
        raise HeadLoadError(f"{task}: no version or alias {wanted!r} in the model registry")
    try:
        folder = source.fetch(ref)
        head = CalibratedHead.load(folder, encoder)
    except Exception as exc:  # download, file and format errors alike keep the old heads
        raise HeadLoadError(f"{task}: cannot load {ref.label}: {exc}") from exc
    if head.task != task:
        raise HeadLoadError(f"{task}: {ref.label} holds a {head.task} head")
    return head, ref.label


def _urgency(task_label: str, urgency: CalibratedHead, sentiment: CalibratedHead) -> UrgencyModel:
    try:
        return UrgencyModel(urgency, sentiment)
    except ValueError as exc:
        raise HeadLoadError(f"urgency: {task_label}: {exc}") from exc


def resolve_heads(
    source: Callable[[], HeadSource],
    encoder: Encoder,
    bundle: HeadSet,
    heads: Mapping[str, str],
    shadow: Mapping[str, str] | None = None,
) -> HeadSet:
    """A new set: `bundle`'s heads, replaced by the registered versions `heads` names, with
    the `shadow` challengers. `source` opens the registry, called only if a version is named.
    Raises HeadLoadError (nothing half-built escapes)."""
    unknown = sorted(set(heads) - set(HEAD_TASKS)) + sorted(set(shadow or {}) - set(HEAD_TASKS))
    if unknown:
        raise HeadLoadError(f"unknown head task(s) {unknown}: the tasks are {list(HEAD_TASKS)}")
    started = time.perf_counter()
    registry: HeadSource | None = None

    def open_source() -> HeadSource:
        nonlocal registry
        if registry is None:
            try:
                registry = source()
            except Exception as exc:  # no registry configured, or it cannot be reached
                raise HeadLoadError(f"cannot open the model registry: {exc}") from exc
        return registry

    intent, sentiment = bundle.intent, bundle.sentiment
    urgency_head = bundle.urgency.head if bundle.urgency else None
    versions = dict(bundle.versions)
    loaded: dict[str, CalibratedHead] = {}
    for task, wanted in heads.items():
        head, label = _load_head(open_source(), encoder, task, wanted)
        if head is not None and label is not None:
            loaded[task] = head
            versions[task] = label
    intent = loaded.get("intent", intent)
    sentiment = loaded.get("sentiment", sentiment)
    urgency_head = loaded.get("urgency", urgency_head)
    urgency = None
    if urgency_head is not None and sentiment is not None:
        urgency = _urgency(versions.get("urgency", "?"), urgency_head, sentiment)
    challengers = _challengers(open_source, encoder, shadow or {}, sentiment)
    resolved = HeadSet(
        intent,
        sentiment,
        urgency,
        _frozen({t: v for t, v in versions.items() if t in HEAD_TASKS}),
        None if intent and sentiment and urgency else bundle.unavailable,
        challengers,
    )
    logger.info(
        "resolved heads %s (shadow %s) in %.1f ms",
        dict(resolved.versions),
        dict(challengers.versions) if challengers else {},
        (time.perf_counter() - started) * 1e3,
    )
    return resolved


def _challengers(
    open_source: Callable[[], HeadSource],
    encoder: Encoder,
    shadow: Mapping[str, str],
    served_sentiment: CalibratedHead | None,
) -> Challengers | None:
    if not shadow:
        return None
    loaded: dict[str, CalibratedHead] = {}
    versions: dict[str, str] = {}
    for task, wanted in shadow.items():
        head, label = _load_head(open_source(), encoder, task, wanted)
        if head is None or label is None:
            raise HeadLoadError(f"{task}: no {wanted!r} version to run in shadow")
        loaded[task], versions[task] = head, label
    urgency = None
    if "urgency" in loaded:
        # The challenger reads the sentiment head it was trained with: the served one, or a
        # sentiment challenger shadowed beside it.
        trained_on = loaded["urgency"].info.get("sentiment")
        feeds = [h for h in (served_sentiment, loaded.get("sentiment")) if h is not None]
        match = next((h for h in feeds if h.fingerprint() == trained_on), None)
        if match is None:
            raise HeadLoadError(
                f"urgency: {versions['urgency']} was trained on sentiment head {trained_on}, "
                "which is neither served nor shadowed"
            )
        urgency = UrgencyModel(loaded["urgency"], match)
    return Challengers(loaded.get("intent"), loaded.get("sentiment"), urgency, _frozen(versions))
