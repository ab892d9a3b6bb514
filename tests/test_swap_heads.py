"""Swapping an analyzer's heads: registered versions resolved through the model registry,
one assignment per swap (a batch never mixes two sets), a failing load that changes nothing,
challengers run in shadow without changing an answer, and the versions every answer carries."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from bench._registry import register_folder, register_head
from core.settings import AiSettings, Settings
from models.analyzer import Analyzer
from models.head_set import HeadLoadError, HeadSet, resolve_heads
from models.registry import ModelRegistry
from models.service import AnalyzeRequest, ShadowAgreement
from tests.factories import TenantCtx, expect, expect_error

TEXTS = [
    "Where is my order 4411? It was due last week",
    "I was charged twice for my subscription this month",
    "¿Cómo cambio la contraseña de mi cuenta?",
    "The app crashes every time I open the settings page",
    "I want to return these shoes and get my money back",
    "Thank you so much, the agent solved it in minutes!",
]
REQUESTS = [AnalyzeRequest(text=t) for t in TEXTS]


@dataclass(frozen=True)
class Store:
    settings: Settings
    registry: ModelRegistry


@pytest.fixture(scope="module")
def store(analyzer: Analyzer, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A temporary MLflow store: intent 1 (the bundle's head), intent 2 (scrambled),
    sentiment 1 and urgency 1 (the bundle's), intent 3 (trained on another encoder)."""
    root = tmp_path_factory.mktemp("registry")
    settings = Settings(data_dir=root / "data")
    bundle = analyzer.bundle
    assert register_head(settings, bundle, "intent", root / "intent-1").version == "1"
    assert (
        register_head(settings, bundle, "intent", root / "intent-2", scramble=True).version == "2"
    )
    assert register_head(settings, bundle, "sentiment", root / "sentiment-1").version == "1"
    assert register_head(settings, bundle, "urgency", root / "urgency-1").version == "1"
    assert bundle.intent is not None
    foreign = root / "intent-3"
    bundle.intent.save(foreign)
    meta = (foreign / "head.json").read_text().replace(bundle.encoder.version, "another-version")
    (foreign / "head.json").write_text(meta)
    assert register_folder(settings, "intent", foreign).version == "3"
    return Store(settings, ModelRegistry.from_settings(settings))


def fresh(analyzer: Analyzer) -> Analyzer:
    """An analyzer of its own on the session's bundle (swaps must not leak into other tests)."""
    return Analyzer(analyzer.bundle, AiSettings())


def resolve(a: Analyzer, store: Store, heads: dict[str, str], **kw: dict[str, str]) -> HeadSet:
    return resolve_heads(lambda: store.registry, a.encoder, a.bundle_heads, heads, kw.get("shadow"))


def test_bundle_heads_report_their_version(analyzer: Analyzer) -> None:
    a = fresh(analyzer)
    label = f"bundle/{analyzer.bundle.heads_key}"
    assert dict(a.heads.versions) == dict.fromkeys(("intent", "sentiment", "urgency"), label)
    result = a.analyze(REQUESTS[:1])[0]
    assert result.model_versions == dict(a.heads.versions)
    assert result.intent.model_version == label
    assert a.versions()["intent"] == label
    empty = a.analyze([AnalyzeRequest(text="   ")])[0]
    assert empty.model_versions == {}  # no head ran


def test_registered_versions_replace_only_what_is_named(analyzer: Analyzer, store: Store) -> None:
    a = fresh(analyzer)
    before = a.analyze(REQUESTS)
    heads = resolve(a, store, {"intent": "1", "urgency": "1"})
    assert heads.versions["intent"] == "relaydesk-intent/1"
    assert heads.versions["urgency"] == "relaydesk-urgency/1"
    assert heads.versions["sentiment"] == f"bundle/{analyzer.bundle.heads_key}"
    a.swap_heads(heads)
    after = a.analyze(REQUESTS)
    for old, new in zip(before, after, strict=True):
        assert new.model_versions["intent"] == "relaydesk-intent/1"
        assert new.intent.label == old.intent.label  # the same weights, another version
        assert new.urgency.label == old.urgency.label
    scrambled = resolve(a, store, {"intent": "2"})
    a.swap_heads(scrambled)
    changed = a.analyze(REQUESTS)
    assert {r.model_versions["intent"] for r in changed} == {"relaydesk-intent/2"}
    assert sum(n.intent.label != o.intent.label for n, o in zip(changed, before, strict=True)) >= 4


def test_champion_alias_falls_back_to_the_bundle_until_set(
    analyzer: Analyzer, store: Store
) -> None:
    a = fresh(analyzer)
    assert resolve(a, store, {"sentiment": "champion"}).versions == a.bundle_heads.versions
    store.registry.set_alias("sentiment", "champion", "1")
    try:
        found = resolve(a, store, {"sentiment": "champion"})
        assert found.versions["sentiment"] == "relaydesk-sentiment/1"
    finally:
        store.registry.delete_alias("sentiment", "champion")


@pytest.mark.parametrize(
    ("heads", "shadow", "reason"),
    [
        ({"intent": "9"}, None, "no version or alias '9'"),
        ({"intent": "3"}, None, "was trained on encoder"),
        ({"language": "1"}, None, "unknown head task"),
        ({"intent": "1"}, {"sentiment": "champion"}, "nothing registered to run in shadow"),
    ],
)
def test_a_failing_load_raises_and_builds_nothing(
    analyzer: Analyzer,
    store: Store,
    heads: dict[str, str],
    shadow: dict[str, str] | None,
    reason: str,
) -> None:
    a = fresh(analyzer)
    with pytest.raises(HeadLoadError, match=reason):
        resolve(a, store, heads, shadow=shadow or {})
    assert a.heads is a.bundle_heads


def test_an_unreachable_registry_is_a_load_error(analyzer: Analyzer) -> None:
    a = fresh(analyzer)

    def broken() -> ModelRegistry:
        raise OSError("connection refused")

    with pytest.raises(HeadLoadError, match="connection refused"):
        resolve_heads(broken, a.encoder, a.bundle_heads, {"intent": "1"})
    # nothing named: the registry is not even opened
    assert resolve_heads(broken, a.encoder, a.bundle_heads, {}).versions == a.bundle_heads.versions


def test_a_batch_is_answered_by_the_set_it_started_with(analyzer: Analyzer, store: Store) -> None:
    a = fresh(analyzer)
    old = a.heads
    prepared = a.prepare(REQUESTS)
    texts = a.texts_to_encode(prepared, old)
    vectors = a.encoder.encode(texts, "query")
    a.swap_heads(resolve(a, store, {"intent": "2"}))  # lands while the batch is encoded
    finished = a.finish(REQUESTS, prepared, vectors, old)
    assert {r.intent.model_version for r in finished} == {old.versions["intent"]}
    assert {r.model_versions["intent"] for r in a.finish(REQUESTS, prepared, vectors)} == {
        "relaydesk-intent/2"
    }


def test_shadow_counts_agreement_and_changes_no_answer(analyzer: Analyzer, store: Store) -> None:
    a = fresh(analyzer)
    plain = a.analyze(REQUESTS)
    a.swap_heads(resolve(a, store, {}, shadow={"intent": "1", "urgency": "1"}))
    same = a.analyze(REQUESTS)
    assert same == plain
    a.swap_heads(resolve(a, store, {}, shadow={"intent": "2"}))
    shadowed = a.analyze(REQUESTS)
    assert shadowed == plain  # a scrambled challenger changes nothing served
    bundle = f"bundle/{analyzer.bundle.heads_key}"
    report = {(r.task, r.challenger): r for r in a.shadow_tally.report()}
    n = len(REQUESTS)
    assert report[("intent", "relaydesk-intent/1")] == ShadowAgreement(
        "intent", bundle, "relaydesk-intent/1", n, n
    )
    assert report[("urgency", "relaydesk-urgency/1")].agreed == n
    scrambled = report[("intent", "relaydesk-intent/2")]
    assert scrambled.compared == n
    assert scrambled.agreed <= 2
    assert a.versions()["shadow:intent"] == "relaydesk-intent/2"


def test_a_failing_challenger_costs_no_answer(analyzer: Analyzer, store: Store) -> None:
    a = fresh(analyzer)
    plain = a.analyze(REQUESTS)
    heads = resolve(a, store, {}, shadow={"intent": "1"})
    assert heads.shadow is not None
    assert heads.shadow.intent is not None
    broken = heads.shadow.intent
    # a challenger whose weights no longer fit the embedding fails at predict time
    bad = replace(broken, coef=np.zeros((3, 5), dtype=np.float32))
    a.swap_heads(replace(heads, shadow=replace(heads.shadow, intent=bad)))
    assert a.analyze(REQUESTS) == plain
    assert a.shadow_tally.report() == []


def test_min_confidence_change_reaches_cached_tenant_classifiers(analyzer: Analyzer) -> None:
    a = fresh(analyzer)
    first = a.analyze(REQUESTS[:1])[0]
    assert first.intent.label is not None
    a.ai = a.ai.model_copy(update={"min_confidence": 0.999})
    assert a.analyze(REQUESTS[:1])[0].intent.reason == "low_confidence"


def test_bundle_head_set_without_heads(analyzer: Analyzer, tmp_path: Path) -> None:
    from models.bundle import load_bundle

    hashing = load_bundle(tmp_path, AiSettings(encoder="hashing"))
    heads = HeadSet.from_bundle(hashing)
    assert not heads.complete
    assert dict(heads.versions) == {}
    assert heads.unavailable == "no head trained for encoder hashing"


def test_push_without_a_running_app_of_this_installation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from serve.runner import ray_address_file
    from serve.swap import push_model_versions, ray_connection

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    settings = Settings(data_dir=tmp_path)
    # no `relaydesk up` for this data dir: nothing to update, and no other Ray is joined
    assert push_model_versions(settings, {"intent": "1"}) is None
    # one that died and left its address: noticed at once, not after Ray's minute of waiting
    ray_address_file(settings).write_text("127.0.0.1:9\n")
    with ray_connection(settings) as connected:
        assert connected is False
    with pytest.raises(ValueError, match="language"):
        push_model_versions(settings, {"language": "1"})


def test_stored_analyses_carry_the_versions_and_a_swap_makes_a_new_row_key(
    analyzer: Analyzer, store: Store
) -> None:
    from pipelines.items import component_versions, model_version

    a = fresh(analyzer)
    before = a.analyze(REQUESTS[:1])[0]
    a.swap_heads(resolve(a, store, {"intent": "1"}))
    after = a.analyze(REQUESTS[:1])[0]
    # message_analyses.versions, and the (message_id, model_version) key of its rows
    assert component_versions(after)["intent"] == "relaydesk-intent/1"
    assert component_versions(before)["intent"] == f"bundle/{analyzer.bundle.heads_key}"
    assert model_version(after) != model_version(before)


@pytest.mark.usefixtures("ai_models")
@pytest.mark.asyncio(loop_scope="session")
async def test_shadow_endpoint_is_for_admins(tenant: TenantCtx, analyzer: Analyzer) -> None:
    viewer = await tenant.client.get("/v1/ai/shadow", headers=tenant.viewer.headers)
    expect_error(viewer, 403)
    body = expect(await tenant.client.get("/v1/ai/shadow", headers=tenant.admin.headers), 200)
    # the session's analyzer shadows nothing: the counts are the tally's, whatever they are
    assert body == {
        "items": [{**vars(r), "agreement": r.agreement} for r in analyzer.shadow_tally.report()]
    }
