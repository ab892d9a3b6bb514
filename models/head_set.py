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
from types import MappingProxyType
from typing import TYPE_CHECKING

from models.bundle import ModelBundle
from models.encoder import Encoder
from models.heads import CalibratedHead, SentimentModel, UrgencyModel

if TYPE_CHECKING:
    from models.registry import ModelRegistry

logger = logging.getLogger(__name__)

HEAD_TASKS = ("intent", "sentiment", "urgency")
Head = CalibratedHead | SentimentModel | UrgencyModel
# An alias that may name nothing yet: until a first version is registered the bundle serves.
CHAMPION = "champion"


class HeadLoadError(RuntimeError):
    """A requested head version cannot be served; the message says which and why."""


def _frozen(versions: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(versions))


@dataclass(frozen=True, slots=True)
class Challengers:
    """Heads run in shadow: on the same embedding as the served ones, never answering."""

    intent: CalibratedHead | None = None
    sentiment: SentimentModel | None = None
    urgency: UrgencyModel | None = None
    versions: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def tasks(self) -> tuple[str, ...]:
        return tuple(t for t in HEAD_TASKS if t in self.versions)


@dataclass(frozen=True, slots=True)
class HeadSet:
    """The served heads and their version labels; `unavailable` says why heads are None."""

    intent: CalibratedHead | None
    sentiment: SentimentModel | None
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
    source: ModelRegistry, encoder: Encoder, task: str, wanted: str
) -> tuple[Head | None, str | None]:
    """The registered head `wanted` names, with its label; (None, None) when `wanted` is the
    champion alias and no champion exists yet (the bundle serves)."""
    from models.registry import load_head

    try:
        ref = source.get(task, wanted)
    except Exception as exc:  # a registry is a remote service: report whatever it raised
        raise HeadLoadError(f"{task}: cannot read the model registry: {exc}") from exc
    if ref is None:
        if wanted == CHAMPION:
            return None, None
        raise HeadLoadError(f"{task}: no version or alias {wanted!r} in the model registry")
    try:
        # urgency comes with the sentiment head it was trained on, whatever sentiment serves
        head = load_head(task, source.fetch(ref), encoder)
    except Exception as exc:  # download, file and format errors alike keep the old heads
        raise HeadLoadError(f"{task}: cannot load {ref.label}: {exc}") from exc
    found = head.task if isinstance(head, CalibratedHead) else head.head.task
    if found != task:
        raise HeadLoadError(f"{task}: {ref.label} holds a {found} head")
    return head, ref.label


def _loaded(
    source: Callable[[], ModelRegistry], encoder: Encoder, spec: Mapping[str, str]
) -> tuple[dict[str, Head], dict[str, str]]:
    heads: dict[str, Head] = {}
    labels: dict[str, str] = {}
    for task, wanted in spec.items():
        head, label = _load_head(source(), encoder, task, wanted)
        if head is not None and label is not None:
            heads[task], labels[task] = head, label
    return heads, labels


def _calibrated(head: Head | None) -> CalibratedHead | None:
    assert head is None or isinstance(head, CalibratedHead)
    return head


def _sentiment(head: Head | None) -> SentimentModel | None:
    assert head is None or isinstance(head, SentimentModel)
    return head


def _urgency(head: Head | None) -> UrgencyModel | None:
    assert head is None or isinstance(head, UrgencyModel)
    return head


def resolve_heads(
    source: Callable[[], ModelRegistry],
    encoder: Encoder,
    bundle: HeadSet,
    heads: Mapping[str, str],
    shadow: Mapping[str, str] | None = None,
) -> HeadSet:
    """A new set: `bundle`'s heads, replaced by the registered versions `heads` names, with
    the `shadow` challengers. `source` opens the registry, called only if a version is
    named. Raises HeadLoadError (nothing half-built escapes)."""
    shadow = shadow or {}
    unknown = sorted((set(heads) | set(shadow)) - set(HEAD_TASKS))
    if unknown:
        raise HeadLoadError(f"unknown head task(s) {unknown}: the tasks are {list(HEAD_TASKS)}")
    started = time.perf_counter()
    registry: ModelRegistry | None = None

    def open_source() -> ModelRegistry:
        nonlocal registry
        if registry is None:
            try:
                registry = source()
            except Exception as exc:  # no registry configured, or it cannot be reached
                raise HeadLoadError(f"cannot open the model registry: {exc}") from exc
        return registry

    served, labels = _loaded(open_source, encoder, heads)
    intent = _calibrated(served.get("intent", bundle.intent))
    sentiment = _sentiment(served.get("sentiment", bundle.sentiment))
    urgency = _urgency(served.get("urgency", bundle.urgency))
    challengers = None
    if shadow:
        found, shadow_labels = _loaded(open_source, encoder, shadow)
        missing = sorted(set(shadow) - set(found))
        if missing:
            raise HeadLoadError(f"nothing registered to run in shadow for {missing}")
        challengers = Challengers(
            _calibrated(found.get("intent")),
            _sentiment(found.get("sentiment")),
            _urgency(found.get("urgency")),
            _frozen(shadow_labels),
        )
    resolved = HeadSet(
        intent,
        sentiment,
        urgency,
        _frozen({**bundle.versions, **labels}),
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
