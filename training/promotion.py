"""The promotion gate, and the alias moves people make by hand (`relaydesk models ...`).

A candidate becomes `champion` only when, scored on the same frozen test set as the current
champion (the candidate's test rows, logged with its run; both models are scored there by the
job's own `evaluate`), its primary metric is not worse (macro-F1 for the heads and category
models, ROC-AUC for churn, recall@3 for the knowledge index) and its calibration error stays
within the configured bound. Otherwise it is `challenger` (shadow mode runs it) and the
decision says why. A task with no champion yet takes the candidate as it is.

Champion history: the registered model's tag `relaydesk.champion_history` lists the versions
that became champion, oldest first; `previous-champion` points at the one before the current,
and `rollback` restores it. Every decision is recorded three ways: tags on the model version,
a run in the MLflow experiment `relaydesk-model-decisions`, and an event in the event store
(aggregate type `model`)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from core.events.types import DomainEvent
from core.settings import Settings
from models.registry import (
    CHALLENGER,
    CHAMPION,
    HEAD_TASKS,
    PREVIOUS_CHAMPION,
    ModelRef,
    ModelRegistry,
    registered_name,
)
from training.jobs.config import GateConfig

if TYPE_CHECKING:
    import pandas as pd

    from training.jobs.base import Evaluation
    from training.jobs.context import JobContext

logger = logging.getLogger(__name__)

HISTORY_TAG = "relaydesk.champion_history"
DECISIONS_EXPERIMENT = "relaydesk-model-decisions"
# Model events are platform-wide, not a tenant's: they carry the nil tenant id.
PLATFORM_TENANT = uuid.UUID(int=0)
_MODEL_NAMESPACE = uuid.UUID("0b9f7a52-3c2e-4f0e-9a57-5d1f0f6a2c11")
Outcome = Literal["champion", "challenger", "rolled_back"]


class PromotionError(ValueError):
    """A promotion or rollback that cannot be done (unknown version, nothing to restore)."""


@dataclass(frozen=True)
class Decision:
    task: str
    version: str
    outcome: Outcome
    reason: str
    champion_before: str | None
    metric: str | None = None
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    forced: bool = False
    actor: str = "relaydesk"
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{registered_name(self.task)}/{self.version}"

    def summary(self) -> str:
        verb = {
            "champion": "is now champion",
            "challenger": "stays challenger",
            "rolled_back": "is champion again (rollback)",
        }[self.outcome]
        return f"{self.label} {verb}: {self.reason}"


def compare(
    metric: str, candidate: dict[str, float], champion: dict[str, float], gate: GateConfig
) -> tuple[bool, str]:
    """(passes, why) for the candidate's figures against the champion's on the same rows."""
    c, b = candidate[metric], champion[metric]
    if c < b - gate.metric_tolerance:
        slack = f" (tolerance {gate.metric_tolerance:g})" if gate.metric_tolerance else ""
        return False, f"{metric} {c:.4f} is worse than the champion's {b:.4f}{slack}"
    why = f"{metric} {c:.4f} against the champion's {b:.4f}"
    if "ece" in candidate and "ece" in champion:
        ce, be = candidate["ece"], champion["ece"]
        if ce > be + gate.max_ece_increase:
            return False, (
                f"{why}, but ECE {ce:.4f} exceeds the champion's {be:.4f} by more than"
                f" {gate.max_ece_increase:g}"
            )
        if gate.max_ece is not None and ce > gate.max_ece:
            return False, f"{why}, but ECE {ce:.4f} is above the bound {gate.max_ece:g}"
        why += f"; ECE {ce:.4f} against {be:.4f} (bound +{gate.max_ece_increase:g})"
    return True, why


def _figures(evaluation: Evaluation, metric: str) -> dict[str, float]:
    return {k: v for k, v in evaluation.metrics.items() if k in (metric, "ece")}


def gate_candidate(
    task: str,
    ref: ModelRef,
    ctx: JobContext,
    gate: GateConfig,
    *,
    candidate: Evaluation | None = None,
    test_set: pd.DataFrame | None = None,
    actor: str = "relaydesk train",
) -> Decision:
    """Compare `ref` with the champion on `ref`'s frozen test set and move the aliases."""
    from training.jobs.runner import job_for
    from training.jobs.tracking import load_test_set

    registry = ctx.registry
    job = job_for(task)
    metric = job.primary_metric
    champion = registry.champion(task)
    if champion is None:
        decision = Decision(
            task, ref.version, "champion", "no champion yet: nothing to compare against",
            None, metric, actor=actor,
        )  # fmt: skip
    elif champion.version == ref.version:
        return Decision(task, ref.version, "champion", "already champion", ref.version, metric)
    else:
        if test_set is None:
            test_set = load_test_set(ref.run_id, registry.tracking_uri)
        if candidate is None:
            candidate = job.evaluate(registry.fetch(ref), test_set, ctx)
        try:
            held = job.evaluate(registry.fetch(champion), test_set, ctx)
        except (ValueError, OSError) as exc:  # EncoderMismatchError is a ValueError
            decision = Decision(
                task, ref.version, "challenger",
                f"the champion {champion.label} cannot be scored on this test set ({exc});"
                " promote by hand with --force", champion.version, metric,
                _figures(candidate, metric), actor=actor,
            )  # fmt: skip
        else:
            cand, champ = _figures(candidate, metric), _figures(held, metric)
            ok, why = compare(metric, cand, champ, gate)
            decision = Decision(
                task, ref.version, "champion" if ok else "challenger",
                f"{why} on the same {len(test_set)} test rows", champion.version, metric,
                cand, champ, actor=actor,
            )  # fmt: skip
    return apply(decision, ctx.settings, registry)


def apply(decision: Decision, settings: Settings, registry: ModelRegistry) -> Decision:
    """Move the aliases for `decision`, record it everywhere and tell serving."""
    if decision.outcome == "champion":
        _make_champion(registry, decision.task, decision.version)
    elif decision.outcome == "challenger":
        registry.set_alias(decision.task, CHALLENGER, decision.version)
    notes = _record(decision, settings, registry)
    if decision.outcome != "challenger" or decision.task in HEAD_TASKS:
        notes += _notify_serving(settings, registry, decision.task)
    return Decision(**{**asdict(decision), "notes": [*decision.notes, *notes]})


def promote(
    ctx: JobContext, task: str, version: str, *, force: bool, gate: GateConfig | None = None
) -> Decision:
    """Make `version` champion: through the gate, or unconditionally with `force`."""
    registry = ctx.registry
    ref = registry.get(task, version)
    if ref is None:
        raise PromotionError(f"{registered_name(task)} has no version {version}")
    if not force:
        return gate_candidate(task, ref, ctx, gate or GateConfig(), actor="relaydesk models")
    before = registry.champion(task)
    decision = Decision(
        task, ref.version, "champion", "promoted by hand (--force), without the gate",
        before.version if before else None, forced=True, actor="relaydesk models",
    )  # fmt: skip
    return apply(decision, ctx.settings, registry)


def rollback(settings: Settings, registry: ModelRegistry, task: str) -> Decision:
    """Restore the version that was champion before the current one."""
    current = registry.champion(task)
    previous = registry.get(task, PREVIOUS_CHAMPION)
    if current is None or previous is None:
        raise PromotionError(f"{registered_name(task)} has no previous champion to restore")
    history = [v for v in _history(registry, task) if v != current.version]
    # the restored version becomes the newest entry; the one before it is the new previous
    history = [v for v in history if v != previous.version] + [previous.version]
    registry.set_alias(task, CHAMPION, previous.version)
    if len(history) >= 2:
        registry.set_alias(task, PREVIOUS_CHAMPION, history[-2])
    else:
        registry.delete_alias(task, PREVIOUS_CHAMPION)
    _save_history(registry, task, history)
    registry.tag_version(current, {"relaydesk.rolled_back": _now()})
    decision = Decision(
        task, previous.version, "rolled_back",
        f"rolled back from version {current.version}", current.version,
        actor="relaydesk models",
    )  # fmt: skip
    notes = _record(decision, settings, registry)
    notes += _notify_serving(settings, registry, task)
    return Decision(**{**asdict(decision), "notes": notes})


# aliases and history --------------------------------------------------------------------


def _history(registry: ModelRegistry, task: str) -> list[str]:
    model = registry.client.get_registered_model(registered_name(task))
    raw = (model.tags or {}).get(HISTORY_TAG)
    return [str(v) for v in json.loads(raw)] if raw else []


def _save_history(registry: ModelRegistry, task: str, history: list[str]) -> None:
    registry.client.set_registered_model_tag(
        registered_name(task), HISTORY_TAG, json.dumps(history[-50:])
    )


def _make_champion(registry: ModelRegistry, task: str, version: str) -> None:
    current = registry.champion(task)
    history = _history(registry, task)
    if current is not None and current.version != version:
        registry.set_alias(task, PREVIOUS_CHAMPION, current.version)
        if not history or history[-1] != current.version:
            history.append(current.version)  # a champion set outside this module
    registry.set_alias(task, CHAMPION, version)
    challenger = registry.get(task, CHALLENGER)
    if challenger is not None and challenger.version == version:
        registry.delete_alias(task, CHALLENGER)
    _save_history(registry, task, [*history, version])


# recording --------------------------------------------------------------------------------

_EVENTS: dict[Outcome, DomainEvent] = {
    "champion": DomainEvent.MODEL_PROMOTED,
    "challenger": DomainEvent.MODEL_REJECTED,
    "rolled_back": DomainEvent.MODEL_ROLLED_BACK,
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _payload(decision: Decision) -> dict[str, Any]:
    return {
        "task": decision.task,
        "model": registered_name(decision.task),
        "version": decision.version,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "champion_before": decision.champion_before,
        "metric": decision.metric,
        "candidate_metrics": decision.candidate_metrics,
        "champion_metrics": decision.champion_metrics,
        "forced": decision.forced,
        "actor": decision.actor,
    }


def _record(decision: Decision, settings: Settings, registry: ModelRegistry) -> list[str]:
    """Write the decision to MLflow and the event store; problems come back as notes (the
    aliases have moved by then, and a missing record must not hide that)."""
    payload = _payload(decision)
    stamp = _now()
    ref = registry.get(decision.task, decision.version)
    if ref is not None:
        registry.tag_version(
            ref,
            {
                "relaydesk.gate.outcome": decision.outcome,
                "relaydesk.gate.reason": decision.reason[:4000],
                "relaydesk.gate.at": stamp,
                "relaydesk.gate.champion_before": decision.champion_before or "",
            },
        )
    _decision_run(registry, payload, stamp)
    try:
        _run_async(_record_event(settings, _EVENTS[decision.outcome], payload))
    except Exception as exc:  # the event store is a record, not the source of truth
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.warning("model decision not written to the event store: %s", first)
        return [
            f"warning: not written to the event store ({first}; is the database migrated?"
            " `relaydesk db upgrade`)"
        ]
    return []


def _decision_run(registry: ModelRegistry, payload: dict[str, Any], stamp: str) -> None:
    client = registry.client
    found = client.get_experiment_by_name(DECISIONS_EXPERIMENT)
    experiment = (
        found.experiment_id
        if found is not None
        else client.create_experiment(
            DECISIONS_EXPERIMENT, artifact_location=registry.artifact_root
        )
    )
    run = client.create_run(
        experiment,
        run_name=f"{payload['outcome']} {payload['model']}/{payload['version']}",
        tags={"relaydesk.task": payload["task"], "relaydesk.outcome": payload["outcome"]},
    )
    for key in ("task", "model", "version", "outcome", "champion_before", "forced", "actor"):
        client.log_param(run.info.run_id, key, str(payload[key]))
    client.log_text(
        run.info.run_id, json.dumps({**payload, "at": stamp}, indent=2), "decision.json"
    )
    client.set_terminated(run.info.run_id)


async def _record_event(settings: Settings, event: DomainEvent, payload: dict[str, Any]) -> None:
    from core.db.engine import create_engine, create_sessionmaker
    from core.events.store import EventContext, EventRecorder

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            recorder = EventRecorder(
                session, EventContext(actor_type="system", actor_id=str(payload["actor"]))
            )
            await recorder.record(
                event,
                tenant_id=PLATFORM_TENANT,
                aggregate_type="model",
                aggregate_id=uuid.uuid5(_MODEL_NAMESPACE, str(payload["model"])),
                payload=payload,
            )
    finally:
        await engine.dispose()


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to completion from sync code, also when the caller is inside a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _notify_serving(settings: Settings, registry: ModelRegistry, task: str) -> list[str]:
    """Point running Serve replicas at the head champions (and challengers, in shadow)."""
    if task not in HEAD_TASKS:
        return []
    try:
        # The one call site of the hot swap (serve/swap.py).
        from serve.swap import push_model_versions  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return ["serving not notified: this installation has no serve.swap"]
    heads = {t: r.version for t, r in registry.champions(HEAD_TASKS).items()}
    shadow = {t: r.version for t in HEAD_TASKS if (r := registry.get(t, CHALLENGER)) is not None}
    try:
        result = push_model_versions(settings, heads, shadow or None)
    except Exception as exc:  # the aliases moved; serving picks them up at its next start
        logger.warning("serving not notified: %s", exc)
        return [f"warning: serving not notified ({exc})"]
    if result is None:
        return ["no Serve app running"]
    if result.error:
        # the replicas kept the heads they had; the alias has moved all the same
        return [f"warning: serving kept its heads: {result}"]
    return [f"serving updated: {result}"]
