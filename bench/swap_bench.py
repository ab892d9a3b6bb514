"""Hot swap of a head version on Ray Serve under load: switch time and failed requests.

    .venv/bin/python bench/swap_bench.py                 # the recorded run (~3 min)
    .venv/bin/python bench/swap_bench.py --swaps 1 --no-redeploy   # a smoke run

On one local Ray (2 CPUs, no dashboard) it deploys the app from its config
(`serve.declarative`, as `relaydesk up` does) over an embedded data dir whose MLflow store
holds two versions of `relaydesk-intent` (the bundle's head, and the same weights with the
label names reversed, so the two are told apart by version and answer). Open-loop
`POST /v1/ai/analyze` at --rate requests/s runs throughout; every --gap seconds the intent
head is swapped with `serve.swap.push_model_versions` (promote to 2, roll back to 1, ...).
Per swap:

- push: the call's own time (config applied → every Enricher replica reports the new set);
- first new: the promotion call → the first response carrying the new version;
- all new: the promotion call → the last response carrying the old version (every later
  answer is new);
- failed requests, and latency around the swap against the steady state;
- the Enricher replica (actor id, pid) before and after.

With --redeploy (the default) it ends with the imperative path for contrast: `serve.run`
of the same app again under the same load (Serve replaces every replica). Writes
bench/results/swap_bench-<time>.json. See docs/benchmarks.md, "Hot swap"."""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `serve`, `models` and `core` importable
    sys.path.insert(0, str(REPO))
# Ray's worker processes inherit the environment, not this sys.path.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# 50 requests/s from one key is beyond the API's per-key limit: measure the swap, not it.
os.environ["RELAYDESK_API__RATE_LIMIT_PER_MINUTE"] = "0"

from bench._registry import register_head  # noqa: E402
from bench._swap_load import LoadLoop, Shot  # noqa: E402
from bench.enrich_bench import (  # noqa: E402
    embedded_data_dir,
    free_port,
    percentile,
    wait_for_quiet,
)
from core.settings import AiSettings, Settings, get_settings  # noqa: E402
from models.bundle import load_bundle  # noqa: E402

TEXTS = [
    "Where is my order 4411? It was due last week",
    "I was charged twice for my subscription this month",
    "¿Cómo cambio la contraseña de mi cuenta?",
    "The app crashes every time I open the settings page",
    "I want to return these shoes and get my money back",
    "Je voudrais annuler ma commande, s'il vous plaît",
    "Mein Paket ist beschädigt angekommen, was kann ich tun?",
    "Can I upgrade my plan to the business tier today?",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=50.0, help="requests/s, open loop")
    p.add_argument("--swaps", type=int, default=4, help="swaps (promote, rollback, ...)")
    p.add_argument("--gap", type=float, default=8.0, help="seconds of load between swaps")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the first")
    p.add_argument("--redeploy", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--wait-load", type=float, default=3.0, help="start below this 1-min load")
    p.add_argument("--wait-max", type=float, default=600.0, help="seconds to wait for it; 0: no")
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return p.parse_args(argv)


def models_dir_sharing(cache: Path, models_dir: Path) -> None:
    """The cache's built artifacts; registry downloads stay with this run's store."""
    models_dir.mkdir(parents=True)
    for entry in cache.iterdir():
        if entry.name != "registry":
            (models_dir / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())


def window(shots: list[Shot], start: float, end: float) -> list[Shot]:
    return [s for s in shots if start <= s.sent < end]


def failures(shots: list[Shot]) -> dict[str, int]:
    """Failed requests by kind: HTTP status, or the client's exception."""
    kinds = Counter(
        str(s.status) if s.status else (s.error or "?").split("(")[0] for s in shots if not s.ok
    )
    return dict(kinds)


def latency_ms(shots: list[Shot]) -> dict[str, float]:
    lat = [(s.done - s.sent) * 1e3 for s in shots]
    if not lat:
        return {}
    return {
        "n": len(lat),
        "p50": round(percentile(lat, 50), 1),
        "p95": round(percentile(lat, 95), 1),
        "p99": round(percentile(lat, 99), 1),
        "max": round(max(lat), 1),
    }


def enricher_replica() -> dict[str, Any]:
    from serve.app import APP_NAME
    from serve.declarative import controller

    client = controller()
    assert client is not None
    app = client.get_serve_details()["applications"][APP_NAME]
    replica = app["deployments"]["Enricher"]["replicas"][0]
    return {k: replica[k] for k in ("replica_id", "actor_id", "pid")}


def swap_figures(shots: list[Shot], t0: float, t1: float, old: str, new: str) -> dict[str, Any]:
    """Switch times of one swap whose promotion call started at t0 (the next one at t1)."""
    after = [s for s in shots if t0 <= s.done < t1]
    first_new = min((s.done for s in after if s.version == new), default=None)
    last_old = max((s.done for s in after if s.version == old), default=t0)
    around = window(shots, t0 - 1.0, t0 + 2.0)
    return {
        "first_new_s": None if first_new is None else round(first_new - t0, 3),
        "all_new_s": round(last_old - t0, 3),
        "failed_around": sum(not s.ok for s in around),
        "latency_around_ms": latency_ms([s for s in around if s.ok]),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from ray import serve

    from serve.app import APP_NAME, build_app
    from serve.declarative import deploy
    from serve.options import AppArgs, EnricherConfig
    from serve.swap import push_model_versions

    cache = args.models_dir or Path(
        os.environ.get("RELAYDESK_TEST_MODELS_CACHE") or get_settings().models_dir
    )
    root = Path(tempfile.mkdtemp(prefix="swap-bench-"))
    models_dir_sharing(cache, root / "models")
    data_dir, key = embedded_data_dir(root / "data", root / "models")
    settings = Settings(data_dir=data_dir)
    bundle = load_bundle(cache, AiSettings(), build_if_missing=False)
    versions = {
        register_head(settings, bundle, "intent", root / f"intent-{n}", scramble=n == 2).label
        for n in (1, 2)
    }
    print(f"registered {sorted(versions)}")
    ray.init(
        num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    report: dict[str, Any] = {"rate": args.rate, "swaps": []}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        started = time.perf_counter()
        app_args = AppArgs(data_dir=str(data_dir))
        deploy(app_args, EnricherConfig(heads={"intent": "1"}))
        report["deploy_s"] = round(time.perf_counter() - started, 1)
        print(f"deployed from its config in {report['deploy_s']} s")
        before = enricher_replica()
        labels = {"1": "relaydesk-intent/1", "2": "relaydesk-intent/2"}
        pushes: list[tuple[float, str, str, Any]] = []
        with LoadLoop(url, key, TEXTS, rate=args.rate) as load:
            time.sleep(args.warmup)
            steady_end = time.monotonic()
            for i in range(args.swaps):
                old, new = ("1", "2") if i % 2 == 0 else ("2", "1")
                t0 = time.monotonic()
                result = push_model_versions(settings, {"intent": new})
                assert result is not None
                assert result.error is None, result.error
                pushes.append((t0, labels[old], labels[new], result))
                print(f"swap {i + 1}: {result}")
                time.sleep(args.gap)
        shots = load.stop()
        after = enricher_replica()
        steady = window(shots, shots[0].sent + 1.0, steady_end)
        ends = [p[0] for p in pushes[1:]] + [float("inf")]
        for (t0, old, new, result), t1 in zip(pushes, ends, strict=True):
            figures = swap_figures(shots, t0, t1, old, new)
            figures.update(
                {
                    "from": old,
                    "to": new,
                    "push_s": round(result.switch_s, 3),
                    "applied_s": None if result.applied_s is None else round(result.applied_s, 3),
                    "replica_load_ms": result.replicas[0].load_ms,
                }
            )
            report["swaps"].append(figures)
        report.update(
            {
                "requests": len(shots),
                "failed": sum(not s.ok for s in shots),
                "failures": failures(shots),
                "achieved_rate": round(len(shots) / (shots[-1].sent - shots[0].sent), 1),
                "steady_latency_ms": latency_ms([s for s in steady if s.ok]),
                "replica_before": before,
                "replica_after": after,
                "same_replica": before == after,
            }
        )
        if args.redeploy:
            report["redeploy"] = redeploy(url, key, args, build_app(app_args), APP_NAME)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    return report


def redeploy(url: str, key: str, args: argparse.Namespace, app: Any, name: str) -> dict[str, Any]:
    """`serve.run` of the same app under the same load: the imperative path, for contrast."""
    from ray import serve

    with LoadLoop(url, key, TEXTS, rate=args.rate) as load:
        time.sleep(args.warmup)
        t0 = time.monotonic()
        serve.run(app, name=name, route_prefix="/")
        took = time.monotonic() - t0
        time.sleep(args.gap)
    shots = load.stop()
    around = window(shots, t0 - 1.0, t0 + took + 2.0)
    print(f"serve.run again: {took:.1f} s, {sum(not s.ok for s in shots)} failed")
    return {
        "serve_run_s": round(took, 1),
        "failed": sum(not s.ok for s in shots),
        "failures": failures(shots),
        "requests": len(shots),
        "latency_around_ms": latency_ms([s for s in around if s.ok]),
        "replica_after": enricher_replica(),
    }


def print_table(report: dict[str, Any]) -> None:
    rate, failed = report["achieved_rate"], report["failed"]
    print(f"\n{report['requests']} requests at {rate}/s, {failed} failed")
    print(f"steady latency: {report['steady_latency_ms']}")
    print(
        "| swap | push s | swapped in s | replica load ms | first new s | all new s "
        "| failed ±2 s | p95 / max ms around |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in report["swaps"]:
        lat = s["latency_around_ms"]
        print(
            f"| {s['from']} → {s['to']} | {s['push_s']} | {s['applied_s']} "
            f"| {s['replica_load_ms']} "
            f"| {s['first_new_s']} | {s['all_new_s']} "
            f"| {s['failed_around']} | {lat.get('p95')} / {lat.get('max')} |"
        )
    pushes = [s["push_s"] for s in report["swaps"]]
    print(f"push median {statistics.median(pushes):.3f} s; same replica: {report['same_replica']}")
    if "redeploy" in report:
        print(f"serve.run again: {report['redeploy']}")


def main(args: argparse.Namespace) -> int:
    quiet = wait_for_quiet(args.wait_max, args.wait_load)
    report = run(args)
    report["machine_at_start"] = quiet
    report["command"] = " ".join(sys.argv)
    report["load_avg"] = os.getloadavg()
    print_table(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"swap_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(parse_args()))
