"""Hot swap on a real local Ray Serve: the app deployed from its config, head versions from a
temporary MLflow store, and `POST /v1/ai/analyze` under 50 requests/s while versions are
promoted, rolled back, refused and shadowed. Every swap must fail no request, keep the same
Enricher replica (actor and process), and switch the answers' versions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench._registry import register_head
from bench._swap_load import LoadLoop, Shot
from core.settings import Settings
from models.analyzer import Analyzer
from serve.options import HeadsStatus
from tests.test_serve import embedded_data_dir, free_port

ray = pytest.importorskip("ray")
from ray import serve  # noqa: E402

from serve import declarative  # noqa: E402
from serve.app import APP_NAME  # noqa: E402
from serve.options import AppArgs, EnricherConfig  # noqa: E402
from serve.swap import SwapResult, push_model_versions  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TEXTS = [
    "Where is my order 4411? It was due last week",
    "I was charged twice for my subscription this month",
    "¿Cómo cambio la contraseña de mi cuenta?",
    "The app crashes every time I open the settings page",
    "I want to return these shoes and get my money back",
    "Je voudrais annuler ma commande, s'il vous plaît",
]
RATE = 50.0
V1, V2 = "relaydesk-intent/1", "relaydesk-intent/2"


@dataclass
class Live:
    settings: Settings
    url: str
    key: str

    def enricher(self) -> Any:
        return serve.get_deployment_handle("Enricher", app_name=APP_NAME)

    def status(self) -> HeadsStatus:
        status: HeadsStatus = self.enricher().heads_status.remote().result()
        return status

    def replica(self) -> dict[str, Any]:
        """The Enricher replica as the controller sees it: id, actor id, pid."""
        client = declarative.controller()
        assert client is not None
        app = client.get_serve_details()["applications"][APP_NAME]
        (replica,) = app["deployments"]["Enricher"]["replicas"]
        return {k: replica[k] for k in ("replica_id", "actor_id", "pid", "start_time_s")}


def models_dir_sharing(cache: Path, models_dir: Path) -> None:
    """A models dir whose built artifacts are the cache's, but whose registry downloads
    stay with this test's MLflow store."""
    models_dir.mkdir(parents=True)
    for entry in cache.iterdir():
        if entry.name != "registry":
            (models_dir / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
    models_cache: Path,
    analyzer: Analyzer,
    ray_session: None,
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("swap")
    models_dir_sharing(models_cache, root / "models")
    data_dir, key = embedded_data_dir(root / "data", root / "models")
    settings = Settings(data_dir=data_dir)
    register_head(settings, analyzer.bundle, "intent", root / "intent-1")
    register_head(settings, analyzer.bundle, "intent", root / "intent-2", scramble=True)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        declarative.deploy(
            AppArgs(data_dir=str(data_dir)), EnricherConfig(heads={"intent": "1"}), timeout_s=600
        )
        yield Live(settings, f"http://127.0.0.1:{port}", key)
    finally:
        serve.shutdown()


@dataclass(frozen=True)
class Swap:
    result: SwapResult
    shots: list[Shot]
    returned: float  # time.monotonic() when push_model_versions returned


def swap_under_load(
    live: Live, heads: dict[str, str], shadow: dict[str, str] | None = None
) -> tuple[SwapResult, list[Shot]]:
    swap = swap_under_load_timed(live, heads, shadow)
    return swap.result, swap.shots


def swap_under_load_timed(
    live: Live, heads: dict[str, str], shadow: dict[str, str] | None = None
) -> Swap:
    with LoadLoop(live.url, live.key, TEXTS, rate=RATE) as load:
        time.sleep(3)
        result = push_model_versions(live.settings, heads, shadow)
        returned = time.monotonic()
        time.sleep(3)
    assert result is not None
    return Swap(result, load.stop(), returned)


def assert_switched(shots: list[Shot], old: str, new: str) -> None:
    failed = [s for s in shots if not s.ok]
    assert not failed, failed[:3]
    assert len(shots) >= RATE * 5  # the load really ran at about 50/s for 6 s
    versions = [s.version for s in shots]
    assert versions[0] == old
    assert versions[-10:] == [new] * 10
    # The swap is one assignment: a request sent after an answer from the new set came back
    # reached the Enricher after the swap, so the new set answers it too.
    first_new = min(s.done for s in shots if s.version == new)
    assert all(s.version == new for s in shots if s.sent > first_new)


def test_deployed_from_config_serves_the_named_version(live: Live) -> None:
    status = live.status()
    assert status.versions["intent"] == V1
    assert status.error is None
    client = declarative.controller()
    assert client is not None
    config = declarative.deployed_config(client)
    assert config is not None
    assert declarative.enricher_config(config).heads == {"intent": "1"}


def test_promote_and_roll_back_under_load(live: Live) -> None:
    before = live.replica()
    result, shots = swap_under_load(live, {"intent": "2"})
    assert result.error is None
    assert result.versions["intent"] == V2
    assert result.switch_s < 30
    assert_switched(shots, V1, V2)
    # the scrambled head answers differently: the labels switched with the version
    labels = {v: {s.label for s in shots if s.version == v} for v in (V1, V2)}
    assert labels[V1] != labels[V2]
    assert live.replica() == before  # reconfigured in place, not replaced
    assert live.status().pid == before["pid"]

    back, shots = swap_under_load(live, {"intent": "1"})
    assert back.error is None
    assert back.versions["intent"] == V1
    assert_switched(shots, V2, V1)
    assert live.replica() == before


def test_a_failing_load_keeps_serving_the_old_version(live: Live) -> None:
    before = live.replica()
    result, shots = swap_under_load(live, {"intent": "99"})
    assert result.error is not None
    assert "no version or alias '99'" in result.error
    assert result.versions["intent"] == V1
    assert all(s.ok and s.version == V1 for s in shots)
    assert live.replica() == before
    # the replica stays healthy and takes the next good config
    again = push_model_versions(live.settings, {"intent": "1"})
    assert again is not None
    assert again.error is None


def test_shadow_records_agreement_without_changing_answers(live: Live) -> None:
    http = live.enricher()
    swap = swap_under_load_timed(live, {"intent": "1"}, shadow={"intent": "2"})
    result, shots = swap.result, swap.shots
    assert result.error is None
    assert result.replicas[0].shadow == {"intent": V2}
    assert all(s.ok and s.version == V1 for s in shots)
    report = [r for r in http.shadow_report.remote().result() if r.challenger == V2]
    assert len(report) == 1
    assert report[0].champion == V1
    # every answer after the swap returned was shadowed (and the tally holds nothing else)
    assert len([s for s in shots if s.sent > swap.returned]) <= report[0].compared <= len(shots)
    assert report[0].agreed < report[0].compared  # the scrambled challenger disagrees
    with httpx.Client(base_url=live.url, headers={"X-API-Key": live.key}) as client:
        body = client.get("/v1/ai/shadow").json()
    (item,) = [i for i in body["items"] if i["challenger"] == V2]
    assert item["task"] == "intent"
    assert 0 <= item["agreement"] < 1
    off = push_model_versions(live.settings, {"intent": "1"})
    assert off is not None
    assert off.replicas[0].shadow == {}


def test_an_unknown_task_is_refused_before_anything_changes(live: Live) -> None:
    before = live.status()
    with pytest.raises(ValueError, match="language"):
        push_model_versions(live.settings, {"language": "1"})
    assert live.status() == before
