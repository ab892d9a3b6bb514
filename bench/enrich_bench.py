"""Message enrichment on Ray Serve against the raw encoder and the naive design.

    .venv/bin/python bench/enrich_bench.py                  # the recorded run (~8 min)
    .venv/bin/python bench/enrich_bench.py --quick          # a smoke run (~3 min)
    .venv/bin/python bench/enrich_bench.py --threads 1 --phases raw,serve

In one run, on one local Ray (2 CPUs, no dashboard) with the app of `serve.app.build_app`:

- raw: the encoder in-process (the Serve replica's backend, 64 texts per call) on chat-length
  and email-length texts, for each encoder thread count: the ceiling; and two 1-thread
  passes at once (raw-2x): both cores given to the encoder alone;
- naive: the same encoder, one pass per task per message (intent, sentiment, urgency and the
  retrieval query: 4 passes of one text each), in-process;
- prepare: the analysis without the encoder pass (`Analyzer.prepare` and `finish`: cleaning,
  language, entities, the heads), in-process, on all texts and on the English ones (spaCy);
- serve: concurrent callers through the Enricher handle (the full analysis: language,
  entities, intent, sentiment, urgency), for each encoder thread count; batching from
  `Encoder.stats()`;
- http: `POST /v1/ai/analyze` through the Serve proxy at a fixed rate, open loop (Poisson
  arrivals, latency counted from each request's scheduled time): p50/p95/p99, errors;
- memory: RSS (and PSS) of every Serve replica, of Serve's controller and proxy, and of
  Ray's own processes.

Before starting it waits (up to --wait-max seconds) for the 1-minute load average to drop
below --wait-load, and before each phase (up to --wait-phase seconds) for other processes to
use less than 0.3 cores; it records the load and the CPU others used in each phase.
Prints a table with ratios against the raw ceiling and the naive design of the same run and
writes bench/results/enrich_bench-<time>.json. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `serve`, `models` and `core` importable
    sys.path.insert(0, str(REPO))
# Ray's worker processes inherit the environment, not this sys.path.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
# Loopback only (docs: stack.md); set before Ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.settings import AiSettings, get_settings  # noqa: E402
from models.analyzer import Analyzer  # noqa: E402
from models.bundle import ModelsNotBuiltError  # noqa: E402
from models.encoder import Encoder, load_encoder  # noqa: E402
from models.service import Analysis, AnalyzeRequest  # noqa: E402

TARGETS = {
    "serve_over_raw": 0.7,
    "serve_over_naive": 3.0,
    "serve_chat_per_s": 100.0,
    "http_p95_ms": 150.0,
    "replicas_rss_gb": 3.0,
}
# What a design without the shared pass embeds per message: one pass per task.
NAIVE_TASKS = ("intent", "sentiment", "urgency", "retrieval query")
RAW_BATCH = 64
CHAT_TOKENS = (10, 32)  # the support_test messages in this range average ~20 tokens
EMAIL_TOKENS = (110, 140)
ALL_PHASES = ("raw", "naive", "prepare", "serve", "http", "memory")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Figures and how to read them: docs/benchmarks.md (Enrichment on Ray Serve).",
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds per phase (20)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each phase (3)")
    p.add_argument("--quick", action="store_true", help="6 s phases, no waiting for quiet")
    p.add_argument("--threads", default="1,2", help="encoder threads to compare (1,2)")
    p.add_argument(
        "--phases", default=",".join(ALL_PHASES), help=f"subset of {','.join(ALL_PHASES)}"
    )
    p.add_argument("--encoder", default=None, help="encoder kind (the settings': e5-onnx)")
    p.add_argument("--callers", type=int, default=16, help="concurrent Enricher callers (16)")
    p.add_argument("--per-call", type=int, default=8, help="messages per Enricher call (8)")
    p.add_argument("--rate", type=float, default=20.0, help="HTTP requests/s, open loop (20)")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="built models, never rebuilt ($RELAYDESK_TEST_MODELS_CACHE, else the data dir's)",
    )
    p.add_argument("--wait-load", type=float, default=2.0, help="1-minute load to wait for (2)")
    p.add_argument(
        "--wait-max",
        type=float,
        default=None,
        help="seconds to wait for it before starting (1200; 0 with --quick)",
    )
    p.add_argument(
        "--wait-phase",
        type=float,
        default=None,
        help="before each phase, seconds to wait for other processes to use < 0.3 cores "
        "(90; 0 with --quick)",
    )
    p.add_argument(
        "--app-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the app builder (serve.options.AppArgs), e.g. encoder_replicas=2",
    )
    p.add_argument(
        "--ray-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment of every Ray process (replicas, proxy), e.g. Serve's flags",
    )
    p.add_argument("--seed", type=int, default=7, help="text order and HTTP arrivals (7)")
    p.add_argument(
        "--results", type=Path, default=REPO / "bench" / "results", help="JSON output folder"
    )
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = min(args.duration, 6.0), 1.0
    if args.wait_max is None:
        args.wait_max = 0.0 if args.quick else 1200.0
    if args.wait_phase is None:
        args.wait_phase = 0.0 if args.quick else 90.0
    args.thread_counts = [int(t) for t in args.threads.split(",")]
    args.phase_set = set(args.phases.split(","))
    unknown = args.phase_set - set(ALL_PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}; expected some of {', '.join(ALL_PHASES)}")
    if args.models_dir is None:
        # the test suite's models cache where there is one, else this installation's models
        cache = os.environ.get("RELAYDESK_TEST_MODELS_CACHE")
        args.models_dir = Path(cache) if cache else get_settings().models_dir
    args.encoder = args.encoder or AiSettings().encoder
    return args


# ----------------------------------------------------------------------------- texts
@dataclass
class Corpus:
    chat: list[str]
    email: list[str]
    tokens: dict[str, dict[str, float]]
    language: dict[str, str]  # text → its language code

    def texts(self, kind: str) -> list[str]:
        """ "chat" or "email"; "-en" after either: its English texts only."""
        texts = self.chat if kind.startswith("chat") else self.email
        if kind.endswith("-en"):
            return [t for t in texts if self.language[t] == "en"]
        return texts


def _token_counts(encoder: Encoder, texts: list[str]) -> list[int]:
    # The encoder's own tokenizer, without `<s>`/`</s>` (the prefix is not counted either).
    tokenize = getattr(encoder, "_tokenize", None)
    if tokenize is None:
        return [len(t.split()) for t in texts]
    return [len(ids) - 2 for ids in tokenize(texts)]


def build_corpus(encoder: Encoder, seed: int) -> Corpus:
    """Chat: the multilingual support test messages of ~20 tokens. Email: messages of one
    language joined into ~120-token emails."""
    rows = [json.loads(line) for line in (REPO / "models/data/support_test.jsonl").open()]
    texts = [str(r["text"]) for r in rows]
    counts = dict(zip(texts, _token_counts(encoder, texts), strict=True))
    chat = [t for t in texts if CHAT_TOKENS[0] <= counts[t] <= CHAT_TOKENS[1]]
    rng = random.Random(seed)
    email: list[str] = []
    language = {str(r["text"]): str(r["lang"]) for r in rows}
    by_lang: dict[str, list[str]] = {}
    for r in rows:
        by_lang.setdefault(str(r["lang"]), []).append(str(r["text"]))
    for lang, pool in by_lang.items():
        for _ in range(24):
            parts: list[str] = []
            for text in rng.sample(pool, len(pool)):
                parts.append(text)
                if sum(counts[p] for p in parts) >= EMAIL_TOKENS[0]:
                    break
            email.append("\n\n".join(parts))
            language[email[-1]] = lang
    email_counts = _token_counts(encoder, email)
    email = [e for e, n in zip(email, email_counts, strict=True) if n <= EMAIL_TOKENS[1]]
    rng.shuffle(chat)
    rng.shuffle(email)

    def described(kind: list[str]) -> dict[str, float]:
        n = _token_counts(encoder, kind)
        return {"texts": len(kind), "mean": round(statistics.mean(n), 1),
                "min": min(n), "max": max(n)}  # fmt: skip

    tokens = {"chat": described(chat), "email": described(email)}
    return Corpus(chat, email, tokens, language)


# ----------------------------------------------------------------------------- metering
class Meter:
    """The machine's load and busy CPU, and this process tree's CPU (this driver, Ray and
    every replica): what other people's work took from a phase."""

    def __init__(self) -> None:
        self.loads: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._mark: tuple[float, float, dict[int, tuple[str, float]], float] | None = None
        self._waited = 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            self.loads.append((time.time(), os.getloadavg()[0]))
            if self._stop.wait(5.0):
                return

    def close(self) -> None:
        self._stop.set()

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        busy: float = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        return busy

    @staticmethod
    def _ours() -> dict[int, tuple[str, float]]:
        out: dict[int, tuple[str, float]] = {}
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                out[proc.pid] = (_group(proc, me), t.user + t.system)
            except psutil.Error:
                continue
        return out

    def settle(self, limit: float, cores: float = 0.3) -> None:
        """Before a phase: wait (up to `limit` seconds) until other processes keep fewer
        than `cores` busy over 2 s, so that the phases of one run meet similar weather."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            busy, ours = self._busy(), self._ours()
            time.sleep(2.0)
            mine = sum(cpu - ours.get(pid, (g, 0.0))[1] for pid, (g, cpu) in self._ours().items())
            if (self._busy() - busy - mine) / 2.0 < cores:
                break
        self._waited = time.monotonic() - started

    def begin(self) -> None:
        """A phase's measured part starts now (after its warm-up)."""
        self._mark = (time.perf_counter(), self._busy(), self._ours(), os.getloadavg()[0])

    def end(self, messages: int) -> dict[str, Any]:
        """Load, cores used by this run and by others, and this run's CPU-ms per message
        by process group (Serve replicas by deployment, Serve's controller and proxy, Ray,
        this driver) since `begin`."""
        assert self._mark is not None, "end() without begin()"
        started, busy, ours, load = self._mark
        seconds = time.perf_counter() - started
        by_group: dict[str, float] = {}
        for pid, (group, cpu) in self._ours().items():
            by_group[group] = by_group.get(group, 0.0) + cpu - ours.get(pid, (group, 0.0))[1]
        mine = sum(by_group.values())
        machine = self._busy() - busy
        waited, self._waited = self._waited, 0.0
        return {
            "waited_for_quiet_s": round(waited),
            "load1_start": round(load, 2),
            "load1_end": round(os.getloadavg()[0], 2),
            "ours_cores": round(mine / seconds, 2),
            "other_cores": round(max(0.0, machine - mine) / seconds, 2),
            "cpu_ms_per_message": {
                g: round(cpu * 1000 / max(1, messages), 2)
                for g, cpu in sorted(by_group.items(), key=lambda kv: -kv[1])
                if cpu * 1000 / max(1, messages) >= 0.05
            },
        }


def _group(proc: psutil.Process, me: psutil.Process) -> str:
    """Which part of the run a process is: a replica's deployment, Serve's controller or
    proxy, the bench driver, or Ray's own processes."""
    if proc.pid == me.pid:
        return "driver"
    try:
        title = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return "ray"
    # Ray titles an actor's process "ray::<actor>[.<method running now>]".
    if title.startswith("ray::ServeReplica:"):
        return title.split(":")[-1].split()[0].split(".")[0]
    if title.startswith(("ray::ServeController", "ray::ProxyActor")):
        return title.split()[0].removeprefix("ray::").split(".")[0]
    return "ray"


def wait_for_quiet(limit: float, below: float) -> dict[str, Any]:
    started = time.monotonic()
    load = os.getloadavg()[0]
    if limit > 0 and load >= below:
        print(f"waiting up to {limit:.0f} s for the 1-minute load ({load:.2f}) to drop below "
              f"{below}", flush=True)  # fmt: skip
    while limit > 0 and load >= below and time.monotonic() - started < limit:
        time.sleep(10)
        load = os.getloadavg()[0]
    waited = time.monotonic() - started
    quiet = load < below
    if limit > 0 and not quiet:
        print(f"the machine did not get quiet (load {load:.2f}): measuring anyway", flush=True)
    return {"waited_s": round(waited), "load1": round(load, 2), "quiet": quiet}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Result:
    phase: str
    threads: int
    text: str
    seconds: float
    messages: int
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase,
            "threads": self.threads,
            "text": self.text,
            "seconds": round(self.seconds, 2),
            "messages": self.messages,
            "messages_per_s": round(self.per_s, 1),
            "errors": self.errors,
        }
        if self.latencies_ms:
            for q in (50, 95, 99):
                out[f"p{q}_ms"] = round(percentile(self.latencies_ms, q), 1)
        return {**out, **self.extra}


def _cycle(texts: list[str], n: int, start: int) -> list[str]:
    return [texts[(start + i) % len(texts)] for i in range(n)]


def _timed(desc: str, duration: float) -> Iterator[float]:
    """Elapsed seconds until `duration`, with a progress bar."""
    bar = tqdm(total=round(duration), desc=desc, unit="s", leave=False, mininterval=0.5)
    started = last = time.perf_counter()
    while (now := time.perf_counter()) - started < duration:
        if now - last >= 1:
            bar.update(int(now - last))
            last += int(now - last)
        yield now - started
    bar.close()


# ----------------------------------------------------------------------------- in-process
def raw_phase(
    encoder: Encoder,
    threads: int,
    corpus: Corpus,
    kind: str,
    args: Any,
    meter: Meter,
    parallel: int = 1,
) -> Result:
    """The encoder alone, 64 texts per call: what the hardware gives at best. `parallel`
    callers at once share the session (ONNX Runtime runs them side by side): with 1-thread
    passes, 2 of them are the ceiling of both cores."""
    texts = corpus.texts(kind)
    name = "raw" if parallel == 1 else f"raw-{parallel}x"
    for _ in _timed(f"{name} warm-up {kind} t={threads}", args.warmup):
        encoder.encode(_cycle(texts, RAW_BATCH, 0), "query")
    counts = [0] * parallel
    stop_at = time.perf_counter() + args.duration

    def loop(worker: int) -> None:
        done = worker * RAW_BATCH
        while time.perf_counter() < stop_at:
            encoder.encode(_cycle(texts, RAW_BATCH, done), "query")
            counts[worker] += RAW_BATCH
            done += parallel * RAW_BATCH

    meter.begin()
    start = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(parallel)]
    for worker in workers:
        worker.start()
    total = round(args.duration)
    with tqdm(total=total, desc=f"{name} {kind} t={threads}", unit="s", leave=False) as bar:
        while any(worker.is_alive() for worker in workers):
            workers[0].join(timeout=1.0)
            bar.n = min(total, round(time.perf_counter() - start))
            bar.refresh()
    for worker in workers:
        worker.join()
    return Result(name, threads, kind, time.perf_counter() - start, sum(counts))


def naive_phase(
    encoder: Encoder, threads: int, corpus: Corpus, kind: str, args: Any, meter: Meter
) -> Result:
    """One encoder pass per task per message, each message alone."""
    texts = corpus.texts(kind)
    for i, _ in enumerate(_timed(f"naive warm-up {kind} t={threads}", args.warmup)):
        encoder.encode([texts[i % len(texts)]], "query")
    meter.begin()
    done, start = 0, time.perf_counter()
    latencies: list[float] = []
    for _ in _timed(f"naive {kind} t={threads}", args.duration):
        began = time.perf_counter()
        for _task in NAIVE_TASKS:
            encoder.encode([texts[done % len(texts)]], "query")
        latencies.append((time.perf_counter() - began) * 1000)
        done += 1
    extra = {"passes_per_message": len(NAIVE_TASKS)}
    return Result("naive", threads, kind, time.perf_counter() - start, done, 0, latencies, extra)


def prepare_phase(analyzer: Analyzer, corpus: Corpus, kind: str, args: Any, meter: Meter) -> Result:
    """`Analyzer.prepare` and `finish` on 8 messages at a time, the vectors computed
    beforehand: what the Enricher does besides waiting for the Encoder. With one BLAS
    thread, as in a replica (Ray sets OMP_NUM_THREADS from its CPU reservation)."""
    texts = corpus.texts(kind)[:200]
    vectors = dict(zip(texts, analyzer.encoder.encode(texts, "query"), strict=True))
    done, n = 0, 8

    def one_batch() -> None:
        nonlocal done
        requests = [AnalyzeRequest(text=t) for t in _cycle(texts, n, done)]
        prepared = analyzer.prepare(requests)
        x = np.stack([vectors[t] for t in analyzer.texts_to_encode(prepared)])
        analyzer.finish(requests, prepared, x)
        done += n

    with threadpool_limits(limits=1):
        for _ in _timed(f"prepare warm-up {kind}", args.warmup):
            one_batch()
        meter.begin()
        done, start = 0, time.perf_counter()
        for _ in _timed(f"prepare {kind}", args.duration / 2):
            one_batch()
        seconds = time.perf_counter() - start
    return Result("prepare", 1, kind, seconds, done)


# ----------------------------------------------------------------------------- Serve
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def embedded_data_dir(root: Path, models_dir: Path) -> tuple[Path, str]:
    """An embedded-mode data dir (SQLite, one tenant) over the built models; returns it
    with the tenant's admin API key."""
    from core.cli.jobs import bootstrap_job
    from core.db.migrate import upgrade_async
    from core.settings import Settings

    root.mkdir(parents=True, exist_ok=True)
    (root / "models").symlink_to(models_dir, target_is_directory=True)
    settings = Settings(data_dir=root)
    asyncio.run(upgrade_async(settings))
    made = asyncio.run(bootstrap_job(settings, "Bench Co", "admin@bench.test", "bench-pass-123"))
    return root, made.api_key


def _check(analyses: list[Analysis], n: int) -> None:
    """The full analysis came back: one per message, every head answered."""
    if len(analyses) != n:
        raise RuntimeError(f"{n} messages, {len(analyses)} analyses")
    for a in analyses:
        if a.sentiment.model_version == "none" or a.intent.model_version == "none":
            raise RuntimeError(f"no analysis: {a.sentiment.reason or a.intent.reason}")


async def serve_phase(
    app: str, threads: int, corpus: Corpus, kind: str, args: Any, meter: Meter
) -> Result:
    """Closed-loop callers of the Enricher handle, `per_call` messages each call (a stream
    consumer's micro-batch)."""
    from ray import serve

    enricher = serve.get_deployment_handle("Enricher", app_name=app)
    encoder = serve.get_deployment_handle("Encoder", app_name=app)
    texts = corpus.texts(kind)
    counter = itertools.count()
    state = {"recording": False, "stop": 0.0, "messages": 0, "errors": 0}
    latencies: list[float] = []
    failures: list[str] = []

    async def caller() -> None:
        while time.perf_counter() < state["stop"]:
            first = next(counter) * args.per_call
            requests = [AnalyzeRequest(text=t) for t in _cycle(texts, args.per_call, first)]
            began = time.perf_counter()
            try:
                _check(await enricher.analyze.remote(requests), len(requests))
                ok = True
            except Exception as exc:
                ok = False
                if len(failures) < 3:
                    failures.append(f"{type(exc).__name__}: {exc}"[:300])
            if state["recording"]:
                if ok:
                    state["messages"] += len(requests)
                    latencies.append((time.perf_counter() - began) * 1000)
                else:
                    state["errors"] += 1

    state["stop"] = time.perf_counter() + args.warmup
    await asyncio.gather(*(caller() for _ in range(args.callers)))
    before = await encoder.stats.remote()
    meter.begin()
    state.update(recording=True, stop=time.perf_counter() + args.duration)
    start = time.perf_counter()
    bar = asyncio.create_task(_progress(f"serve {kind} t={threads}", args.duration))
    await asyncio.gather(*(caller() for _ in range(args.callers)))
    seconds = time.perf_counter() - start
    bar.cancel()
    after = await encoder.stats.remote()
    passes = after["passes"] - before["passes"]
    texts_encoded = after["texts"] - before["texts"]
    extra: dict[str, Any] = {
        "callers": args.callers,
        "messages_per_call": args.per_call,
        "encoder_passes": passes,
        "texts_per_pass": round(texts_encoded / passes, 1) if passes else None,
        "encoder_texts": texts_encoded,
    }
    if failures:
        extra["first_errors"] = failures
    # latencies are per call (per_call messages)
    return Result(
        "serve", threads, kind, seconds, int(state["messages"]), int(state["errors"]),
        latencies, extra,
    )  # fmt: skip


async def _progress(desc: str, duration: float) -> None:
    with tqdm(total=round(duration), desc=desc, unit="s", leave=False) as bar:
        for _ in range(round(duration)):
            await asyncio.sleep(1)
            bar.update(1)


async def http_phase(
    url: str, key: str, threads: int, corpus: Corpus, args: Any, meter: Meter
) -> Result:
    """`POST /v1/ai/analyze` (one chat message each) at `rate` requests/s, Poisson arrivals,
    open loop: a slow answer does not delay the next request."""
    rng = random.Random(args.seed)
    texts = corpus.chat
    arrivals: list[float] = []
    at = rng.expovariate(args.rate)
    while at < args.duration:
        arrivals.append(at)
        at += rng.expovariate(args.rate)
    latencies: list[float] = []
    failures: list[str] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as http:
        for i, _ in enumerate(_timed(f"http warm-up t={threads}", args.warmup)):
            await http.post("/v1/ai/analyze", json={"text": texts[i % len(texts)]})
        meter.begin()
        start = time.perf_counter()
        wall_start = time.time()

        async def one(i: int, at: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            try:
                r = await http.post("/v1/ai/analyze", json={"text": texts[i % len(texts)]})
                ok = r.status_code == 200 and r.json()["intent"]["model_version"] != "none"
                why = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            if ok:
                latencies.append((time.perf_counter() - start - at) * 1000)
            else:
                errors += 1
                if len(failures) < 3:
                    failures.append(why)

        bar = asyncio.create_task(_progress(f"http {args.rate:g}/s t={threads}", args.duration))
        await asyncio.gather(*(one(i, at) for i, at in enumerate(arrivals)))
        seconds = time.perf_counter() - start
        bar.cancel()
    extra: dict[str, Any] = {
        "stages": stage_latencies(wall_start, wall_start + seconds),
        "offered_per_s": args.rate,
        "sent": len(arrivals),
        "arrivals": "poisson",
        "text": "chat",
    }
    if failures:
        extra["first_errors"] = failures
    return Result("http", threads, "chat", seconds, len(latencies), errors, latencies, extra)


_ACCESS = re.compile(
    r"^\w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .* -- (?:POST|CALL) \S+ \S+ ([0-9.]+)ms$"
)


def stage_latencies(since: float, until: float) -> dict[str, dict[str, float]]:
    """p50/p95 of each hop of a request (proxy, Api, Enricher, Encoder) between two
    wall-clock times, from Serve's access logs; each includes the hops after it. Empty where
    the logs cannot be read (another Ray version, access logs off)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return {}
    logs = Path(node.get_logs_dir_path()) / "serve"
    out: dict[str, dict[str, float]] = {}
    for stage, pattern in (
        ("proxy", "proxy_*.log"),
        ("Api", "replica_*_Api_*.log"),
        ("Enricher", "replica_*_Enricher_*.log"),
        ("Encoder", "replica_*_Encoder_*.log"),
    ):
        values: list[float] = []
        for path in logs.glob(pattern):
            for line in path.read_text(errors="replace").splitlines():
                m = _ACCESS.match(line)
                if not m:
                    continue
                at = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S"))
                if since <= at + int(m.group(1)[20:]) / 1000 <= until:
                    values.append(float(m.group(2)))
        if values:
            out[stage] = {
                "n": len(values),
                "p50_ms": round(percentile(values, 50), 1),
                "p95_ms": round(percentile(values, 95), 1),
            }
    return out


def memory() -> dict[str, Any]:
    """RSS and PSS of the processes under this driver: Serve replicas (by deployment),
    Serve's controller and proxy, Ray's own processes (GCS, raylet, agents, idle workers)."""
    me = psutil.Process()
    groups: dict[str, dict[str, Any]] = {}

    def add(group: str, name: str, proc: psutil.Process) -> None:
        try:
            info = proc.memory_full_info()
            rss, pss = info.rss, getattr(info, "pss", 0)
        except psutil.AccessDenied:
            rss, pss = proc.memory_info().rss, 0
        except psutil.Error:
            return
        g = groups.setdefault(group, {"rss_mb": 0.0, "pss_mb": 0.0, "processes": {}})
        g["rss_mb"] += rss / 2**20
        g["pss_mb"] += pss / 2**20
        key = name
        n = 2
        while key in g["processes"]:
            key, n = f"{name} #{n}", n + 1
        g["processes"][key] = round(rss / 2**20)

    for proc in [me, *me.children(recursive=True)]:
        group = _group(proc, me)
        if group in ("driver", "ray"):
            try:
                name = _short(" ".join(proc.cmdline()) or proc.name())
            except psutil.Error:
                continue
            add(group, name, proc)
        elif group in ("ServeController", "ProxyActor"):
            add("serve_system", group, proc)
        else:
            add("replicas", group, proc)
    for g in groups.values():
        g["rss_mb"], g["pss_mb"] = round(g["rss_mb"]), round(g["pss_mb"])
    return groups


def _short(title: str) -> str:
    first = title.split()[0]
    if first.startswith("ray::"):
        return first
    for word in title.split():
        if word.endswith(".py") or "gcs_server" in word or "raylet" in word:
            return Path(word).name
    return Path(first).name


class ServeSession:
    """One local Ray and Serve for the whole run; `deploy` (re)deploys the app."""

    def __init__(self, args: Any, data_dir: Path) -> None:
        import ray
        from ray import serve

        self.args, self.data_dir = args, data_dir
        # One loop for every phase: handles stay bound to the loop they were first used on.
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The replicas log as configured; their lines just do not reach this terminal.
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        serve.start(http_options={"host": "127.0.0.1", "port": self.port})

    def deploy(self, threads: int) -> float:
        from ray import serve

        from serve.app import APP_NAME, build_app
        from serve.options import AppArgs

        started = time.perf_counter()
        extra = dict(item.partition("=")[::2] for item in self.args.app_arg)
        app_args = AppArgs.model_validate(
            {
                **extra,
                "data_dir": str(self.data_dir),
                "encoder": self.args.encoder,
                "encoder_threads": threads,
            }
        )
        serve.run(build_app(app_args), name=APP_NAME, route_prefix="/")
        return time.perf_counter() - started

    def close(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
        self.loop.close()


# ----------------------------------------------------------------------------- report
def verdicts(results: list[Result], mem: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Targets per encoder thread count, against the raw and naive figures of this run."""
    by = {(r.phase, r.threads, r.text): r for r in results}
    out: dict[str, Any] = {}
    for threads in sorted({r.threads for r in results if r.phase in ("serve", "http")}):
        v: dict[str, Any] = {}
        for kind in ("chat", "email"):
            serve_r = by.get(("serve", threads, kind))
            raw = by.get(("raw", threads, kind))
            naive = by.get(("naive", threads, kind))
            if serve_r and raw:
                ratio = serve_r.per_s / raw.per_s
                v[f"serve_over_raw_{kind}"] = _verdict(ratio, ">=", TARGETS["serve_over_raw"])
            # Against both cores given to the encoder alone: for information (the rest of
            # the analysis needs CPU too, so 0.7 of it is out of reach on 2 cores).
            if serve_r and (both := by.get(("raw-2x", 1, kind))):
                ratio = serve_r.per_s / both.per_s
                v[f"serve_over_raw_2x_{kind}"] = {
                    **_verdict(ratio, ">=", TARGETS["serve_over_raw"]),
                    "info_only": True,
                }
            if serve_r and naive:
                ratio = serve_r.per_s / naive.per_s
                v[f"serve_over_naive_{kind}"] = _verdict(ratio, ">=", TARGETS["serve_over_naive"])
        if chat := by.get(("serve", threads, "chat")):
            v["serve_chat_per_s"] = _verdict(chat.per_s, ">=", TARGETS["serve_chat_per_s"])
        if http := by.get(("http", threads, "chat")):
            p95 = percentile(http.latencies_ms, 95)
            v["http_p95_ms"] = _verdict(p95, "<=", TARGETS["http_p95_ms"])
            v["http_errors"] = _verdict(float(http.errors), "<=", 0.0)
        if threads in mem:
            gb = mem[threads].get("replicas", {}).get("rss_mb", 0) / 1024
            v["replicas_rss_gb"] = _verdict(gb, "<=", TARGETS["replicas_rss_gb"])
        out[f"threads={threads}"] = v
    return out


def _verdict(value: float, op: str, target: float) -> dict[str, Any]:
    met = value >= target if op == ">=" else value <= target
    return {"value": round(value, 2), "target": f"{op} {target:g}", "met": met}


def print_table(results: list[Result], mem: dict[int, dict[str, Any]]) -> None:
    raw = {(r.threads, r.text): r.per_s for r in results if r.phase == "raw"}
    naive = {(r.threads, r.text): r.per_s for r in results if r.phase == "naive"}
    print(f"\n{'phase':<8}{'threads':>8}{'text':>9}{'msg/s':>9}{'÷raw':>7}{'÷naive':>8}"
          f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'err':>5}{'texts/pass':>11}"
          f"{'other CPU':>10}")  # fmt: skip
    for r in results:
        s = r.summary()
        ratio_raw = r.per_s / raw[(r.threads, r.text)] if (r.threads, r.text) in raw else None
        key = (r.threads, r.text)
        ratio_naive = r.per_s / naive[key] if key in naive and r.phase != "prepare" else None
        cells = [
            f"{r.phase:<8}{r.threads:>8}{r.text:>9}{r.per_s:>9.1f}",
            f"{ratio_raw:>7.2f}" if ratio_raw and r.phase in ("naive", "serve") else f"{'':>7}",
            f"{ratio_naive:>8.2f}" if ratio_naive and r.phase != "http" else f"{'':>8}",
        ]
        for q in (50, 95, 99):
            cells.append(f"{s[f'p{q}_ms']:>9.1f}" if f"p{q}_ms" in s else f"{'':>9}")
        cells.append(f"{r.errors:>5}")
        tpp = s.get("texts_per_pass")
        cells.append(f"{tpp:>11}" if tpp is not None else f"{'':>11}")
        cells.append(f"{s.get('other_cores', ''):>10}")
        print("".join(cells))
    print("(serve latencies are per call; http: per request from its scheduled time; "
          "other CPU: cores used by processes outside this run)")  # fmt: skip
    for r in results:
        if r.phase == "http" and r.extra.get("stages"):
            stages = ", ".join(
                f"{k} {v['p50_ms']}/{v['p95_ms']}" for k, v in r.extra["stages"].items()
            )
            print(f"http threads={r.threads}, ms in each hop and the ones after it "
                  f"(p50/p95): {stages}")  # fmt: skip
    for threads, groups in mem.items():
        parts = [f"{g}: {v['rss_mb']} MB RSS ({v['pss_mb']} MB PSS)" for g, v in groups.items()]
        print(f"memory, threads={threads}: " + "; ".join(parts))
        if "replicas" in groups:
            print("  replicas: " + ", ".join(
                f"{k} {v} MB" for k, v in groups["replicas"]["processes"].items()
            ))  # fmt: skip


# ----------------------------------------------------------------------------- main
def main(args: argparse.Namespace) -> int:
    run_started = time.perf_counter()
    quiet = wait_for_quiet(args.wait_max, args.wait_load)
    meter = Meter()
    results: list[Result] = []
    mem: dict[int, dict[str, Any]] = {}
    deploy_s: dict[int, float] = {}

    def record(result: Result) -> None:
        result.extra.update(meter.end(result.messages))
        results.append(result)
        ratio = ""
        raw = next((r for r in results if r.phase == "raw" and r.threads == result.threads
                    and r.text == result.text), None)  # fmt: skip
        if raw and result.phase in ("naive", "serve"):
            ratio = f" ({result.per_s / raw.per_s:.2f} x raw)"
        cpu = ", ".join(f"{k} {v}" for k, v in result.extra["cpu_ms_per_message"].items())
        other = result.extra["other_cores"]
        print(f"  {result.phase} {result.text} threads={result.threads}: "
              f"{result.per_s:.1f} messages/s{ratio}; others used {other} cores; "
              f"CPU-ms/message: {cpu}", flush=True)  # fmt: skip

    print(f"encoder {args.encoder}, models {args.models_dir}, load {os.getloadavg()[0]:.2f}")
    # The models are built beforehand, never here; the replicas refuse to build them too.
    try:
        analyzer: Analyzer | None = Analyzer.load(
            args.models_dir, AiSettings(encoder=args.encoder), build_if_missing=False
        )
    except ModelsNotBuiltError as exc:
        print(f"{exc}\n(--models-dir {args.models_dir}; build them with `relaydesk models build`)")
        return 2
    assert analyzer is not None
    if analyzer.bundle.unavailable:
        print(f"the analysis is not available: {analyzer.bundle.unavailable}")
        return 2
    corpus: Corpus | None = None
    for threads in args.thread_counts:
        if not args.phase_set & {"raw", "naive"} and corpus is not None:
            break
        encoder = load_encoder(args.encoder, args.models_dir, threads)
        if corpus is None:
            corpus = build_corpus(encoder, args.seed)
            print(f"texts: {json.dumps(corpus.tokens)}", flush=True)
        for kind in ("chat", "email"):
            if "raw" in args.phase_set:
                meter.settle(args.wait_phase)
                record(raw_phase(encoder, threads, corpus, kind, args, meter))
                if threads == 1:
                    meter.settle(args.wait_phase)
                    record(raw_phase(encoder, threads, corpus, kind, args, meter, parallel=2))
            if "naive" in args.phase_set:
                meter.settle(args.wait_phase)
                record(naive_phase(encoder, threads, corpus, kind, args, meter))
        del encoder
    assert corpus is not None
    if "prepare" in args.phase_set:
        for kind in ("chat", "chat-en", "email", "email-en"):
            meter.settle(args.wait_phase)
            record(prepare_phase(analyzer, corpus, kind, args, meter))
    analyzer = None  # the driver's memory is not the replicas'

    if args.phase_set & {"serve", "http", "memory"}:
        root = Path(tempfile.mkdtemp(prefix="relaydesk-enrich-bench-"))
        # Replicas read their settings from the environment Ray starts them with.
        for name in [k for k in os.environ if k.startswith("RELAYDESK_")]:
            del os.environ[name]
        os.environ["RELAYDESK_API__RATE_LIMIT_PER_MINUTE"] = "0"
        data_dir, key = embedded_data_dir(root / "data", args.models_dir)
        os.environ["RELAYDESK_DATA_DIR"] = str(data_dir)
        for item in args.ray_env:
            name, _, value = item.partition("=")
            os.environ[name] = value
        print("starting Ray and Serve ...", flush=True)
        session = ServeSession(args, data_dir)
        try:
            for threads in args.thread_counts:
                deploy_s[threads] = session.deploy(threads)
                print(f"deployed with {threads} encoder thread(s) in {deploy_s[threads]:.1f} s",
                      flush=True)  # fmt: skip
                for kind in ("chat", "email"):
                    if "serve" in args.phase_set:
                        meter.settle(args.wait_phase)
                        phase = serve_phase("relaydesk", threads, corpus, kind, args, meter)
                        record(session.loop.run_until_complete(phase))
                if "http" in args.phase_set:
                    meter.settle(args.wait_phase)
                    phase = http_phase(session.url, key, threads, corpus, args, meter)
                    record(session.loop.run_until_complete(phase))
                if "memory" in args.phase_set:
                    mem[threads] = memory()
        finally:
            session.close()
    meter.close()

    print_table(results, mem)
    targets = verdicts(results, mem)
    for config, v in targets.items():
        print(f"targets ({config}):")
        for name, item in v.items():
            verdict = "met" if item["met"] else "MISSED"
            if item.get("info_only"):
                verdict += " (for information)"
            print(f"  {name:<26}{item['value']:>10}  (target {item['target']}): {verdict}")
    loads = [load for _, load in meter.loads]
    machine = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "before_run": quiet,
        "load1_during_run": {
            "min": round(min(loads), 2),
            "max": round(max(loads), 2),
            "mean": round(statistics.mean(loads), 2),
        },
        "other_cores_mean": round(
            statistics.mean([r.extra["other_cores"] for r in results] or [0.0]), 2
        ),
    }
    total = time.perf_counter() - run_started
    print(f"\nrun: {total:.0f} s; 1-minute load during the run {machine['load1_during_run']}; "
          f"other processes used {machine['other_cores_mean']} cores on average")  # fmt: skip
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"enrich_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine,
        "encoder": args.encoder,
        "texts": corpus.tokens,
        "args": {k: str(v) for k, v in vars(args).items() if k not in ("phase_set",)},
        "deploy_s": {str(k): round(v, 1) for k, v in deploy_s.items()},
        "results": [r.summary() for r in results],
        "memory_mb": {str(k): v for k, v in mem.items()},
        "targets": targets,
        "run_seconds": round(total, 1),
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"results: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    missed = any(
        not item["met"] for v in targets.values() for item in v.values() if "info_only" not in item
    )
    return 1 if args.check and missed else 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main(parse_args()))
