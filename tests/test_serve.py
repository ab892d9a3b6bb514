"""The Serve application on a real local Ray: the API ingress over HTTP next to the model
deployments, one encoder pass per message, knowledge search through the Retriever, churn,
odd input, the web chat widget's WebSocket through Serve's proxy, and `relaydesk up`
stopping cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.cli.jobs import bootstrap_job
from core.db.migrate import upgrade_async
from core.settings import Settings
from models.analyzer import Analyzer
from models.service import AnalyzeRequest

ray = pytest.importorskip("ray")  # a hard dependency; this only names the import once
from ray import serve  # noqa: E402

from serve.app import APP_NAME, build_app  # noqa: E402
from serve.options import AppArgs  # noqa: E402

# Starting Ray and the five deployments takes 30-60 s on two shared cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def embedded_data_dir(root: Path, models_cache: Path) -> tuple[Path, str]:
    """An embedded-mode data dir (SQLite migrated, one tenant) sharing the built models;
    returns it with the tenant's admin API key."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models").symlink_to(models_cache, target_is_directory=True)
    settings = Settings(data_dir=root)
    asyncio.run(upgrade_async(settings))
    made = asyncio.run(bootstrap_job(settings, "Serve Co", "admin@serve.test", "serve-pass-123"))
    return root, made.api_key


class App:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)

    def handle(self, name: str) -> Any:
        return serve.get_deployment_handle(name, app_name=APP_NAME)


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory,
    models_cache: Path,
    analyzer: Analyzer,
    ray_session: None,
) -> Iterator[App]:
    # `analyzer` makes sure the encoder and its heads are built in the models cache: the
    # replicas refuse to build.
    data_dir, key = embedded_data_dir(tmp_path_factory.mktemp("serve") / "data", models_cache)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(AppArgs(data_dir=str(data_dir))), name=APP_NAME, route_prefix="/")
        client = App(f"http://127.0.0.1:{port}", key)
        try:
            yield client
        finally:
            client.http.close()  # an open keep-alive socket fails the session (warnings)
    finally:
        serve.shutdown()


def test_analyze_over_http(app: App) -> None:
    response = app.http.post(
        "/v1/ai/analyze", json={"text": "¿Dónde está mi pedido 4411? Lo pedí hace dos semanas"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"]["code"] == "es"
    assert body["intent"]["label"] == "order_status"
    assert body["intent"]["model_version"]
    assert abs(sum(body["sentiment"]["probabilities"].values()) - 1) < 1e-6
    assert any(e["type"] == "order_id" for e in body["entities"])


def test_a_reply_leaves_through_the_channel_workers_replica(app: App) -> None:
    """The Api replica stores the reply and wakes the one ChannelWorkers replica, which
    sends it to the (local) Graph API."""
    from tests.channel_helpers import start_graph
    from tests.fake_graph import signed, wa_message, webhook_body
    from tests.test_whatsapp import SECRET, wa_config

    status = app.handle("ChannelWorkers").status.remote().result(timeout_s=30)
    assert set(status) == {"delivery-worker", "email-poller", "template-sync"}
    assert all(loop["running"] for loop in status.values())
    for graph in start_graph():
        body = {"type": "whatsapp", "name": "WA", "config": wa_config(graph)}
        channel = app.http.post("/v1/channels", json=body)
        assert channel.status_code == 201, channel.text
        raw, headers = signed(
            webhook_body([wa_message("text", {"body": "Hi"}, "15559000001")]), SECRET
        )
        pushed = app.http.post(
            f"/webhooks/whatsapp/{channel.json()['id']}", content=raw, headers=headers
        )
        assert pushed.status_code == 200, pushed.text
        listed = app.http.get("/v1/conversations", params={"channel_id": channel.json()["id"]})
        [conversation] = listed.json()["items"]
        url = f"/v1/conversations/{conversation['id']}"
        stored = app.http.post(f"{url}/messages", json={"text": "Through Serve"})
        assert stored.status_code == 201, stored.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = app.http.get(url).json()["messages"][-1]
            if shown["delivery_status"] != "queued":
                break
            time.sleep(0.2)
        assert shown["delivery_status"] == "sent", shown
        assert graph.sends()[-1]["text"]["body"] == "Through Serve"


def test_one_encoder_pass_per_message_and_batching(app: App) -> None:
    encoder, enricher = app.handle("Encoder"), app.handle("Enricher")
    before = encoder.stats.remote().result()
    texts = [f"I want to return these shoes and get my money back, order {n}" for n in range(12)]
    # 12 callers with one message each, at once, and one caller with 8 messages
    singles = [enricher.analyze.remote([AnalyzeRequest(text=t)]) for t in texts]
    batch = enricher.analyze.remote([AnalyzeRequest(text=t + " (batch)") for t in texts[:8]])
    results = [r.result() for r in singles] + [batch.result()]
    after = encoder.stats.remote().result()
    assert sum(len(r) for r in results) == 20
    assert all(a.intent.label == "return_refund" for r in results for a in r)
    assert after["texts"] - before["texts"] == 20  # one embedding per message, no more
    assert after["passes"] - before["passes"] < 13  # concurrent callers shared passes


def test_knowledge_article_is_searchable_within_seconds(app: App) -> None:
    created = app.http.post(
        "/v1/kb/articles",
        json={
            "title": "Returning a damaged item",
            "body": "If your item arrived damaged, open a return from your orders page within "
            "30 days. We send a prepaid label and refund you when the parcel is scanned.",
            "language": "en",
        },
    )
    assert created.status_code == 201, created.text
    article_id = created.json()["id"]
    deadline = time.monotonic() + 10
    hits: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = app.http.post("/v1/kb/search", json={"query": "mi producto llegó roto", "k": 3})
        assert found.status_code == 200, found.text
        hits = found.json()["items"]
        if hits:
            break
        time.sleep(0.5)
    assert hits
    assert hits[0]["citation"]["article_id"] == article_id


def test_churn_over_http(app: App) -> None:
    customer = app.http.post("/v1/customers", json={"name": "Ana", "email": "ana@serve.test"})
    assert customer.status_code == 201, customer.text
    churn = app.http.get(f"/v1/customers/{customer.json()['id']}/churn")
    assert churn.status_code == 200, churn.text
    body = churn.json()
    assert 0 < body["probability"] < 1
    assert body["band"] in ("low", "medium", "high")
    assert {f["name"] for f in body["factors"]} >= {"contacts_30d", "open_tickets"}


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"text": ""}, 422),
        ({"text": 42}, 422),
        ({}, 422),
        ({"text": "ok", "channel": "carrier-pigeon"}, 422),
    ],
)
def test_bad_input_over_http_is_a_4xx(app: App, payload: dict[str, Any], status: int) -> None:
    response = app.http.post("/v1/ai/analyze", json=payload)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_odd_text_gets_a_clear_answer(app: App) -> None:
    binary = app.http.post("/v1/ai/analyze", json={"text": "\x01\x02\x03\ufffd\x04" * 50})
    assert binary.status_code == 200, binary.text
    assert binary.json()["intent"]["label"] is None
    assert binary.json()["notes"]
    huge = app.http.post("/v1/ai/analyze", json={"text": "my order is late. " * 2000})
    assert huge.status_code == 200, huge.text
    assert huge.json()["truncated"] is True


def test_widget_websocket_through_the_serve_proxy(app: App) -> None:
    """Serve's proxy carries WebSockets to the FastAPI ingress: a visitor's message comes
    in live and the agent's reply is pushed back on the same socket."""
    from websockets.sync.client import connect

    channel = app.http.post("/v1/channels", json={"type": "web", "name": "Web chat", "config": {}})
    assert channel.status_code == 201, channel.text
    channel_id = channel.json()["id"]
    session = app.http.post(f"/widget/{channel_id}/session", json={})
    assert session.status_code == 200, session.text
    url = app.url.replace("http://", "ws://") + f"/widget/{channel_id}/ws"
    with connect(url, open_timeout=30) as socket:
        socket.send(json.dumps({"type": "auth", "token": session.json()["token"]}))
        assert json.loads(socket.recv(timeout=30))["type"] == "ready"
        client_id = str(uuid.uuid4())
        socket.send(json.dumps({"type": "message", "client_id": client_id, "text": "Hi Serve"}))
        echo = json.loads(socket.recv(timeout=30))
        assert echo["type"] == "message", echo
        assert echo["client_id"] == client_id
        listed = app.http.get("/v1/conversations", params={"channel_id": channel_id})
        conversation_id = listed.json()["items"][0]["id"]
        sent = app.http.post(
            f"/v1/conversations/{conversation_id}/messages", json={"text": "Hello from Serve"}
        )
        assert sent.status_code == 201, sent.text
        pushed = json.loads(socket.recv(timeout=5))
        assert pushed["message"]["id"] == sent.json()["provider_message_id"]
        assert pushed["message"]["text"] == "Hello from Serve"


def test_relaydesk_up_serves_and_stops_on_ctrl_c(
    tmp_path: Path, models_cache: Path, app: App
) -> None:
    # A second, independent local Ray next to the test session's: the command owns it.
    data_dir, _ = embedded_data_dir(tmp_path / "data", models_cache)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(RELAYDESK_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli.main", "up", "--port", str(port), "--no-dashboard"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(1)
        assert ready, "relaydesk up did not answer /healthz"
        # where `relaydesk models promote` finds this Ray (and no other)
        assert (data_dir / "ray.address").read_text().strip()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    assert f"http://127.0.0.1:{port}/docs" in out
    assert "Stopped." in out
    assert not (data_dir / "ray.address").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
