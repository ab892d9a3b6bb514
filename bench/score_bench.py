"""Batch scoring (`relaydesk score`) against a single-process loop and the raw encoder.

    .venv/bin/python bench/score_bench.py                 # the recorded run: 50,000 rows
    .venv/bin/python bench/score_bench.py --rows 5000     # a smoke run

In one run, on one local Ray (no dashboard), over the same support texts (the project's
support_train and support_test messages in eight languages, cycled with variations: other
order numbers and amounts, greetings and sign-offs, two messages joined as an email):

- raw: the encoder's ceiling: `--workers` Ray actors, each with a 1-thread encoder (the
  same thread count per process as the scoring actors), encoding their share of the texts
  64 at a time, and nothing else;
- loop: the plain single-process loop over the same models: `Analyzer.analyze` on
  `--batch-size` rows at a time, in this process (its encoder thread count: the settings',
  1 by default; `--loop-threads 1,2` adds others);
- score: `pipelines.scoring.score_file` from a CSV of the texts to a Parquet file, as
  `relaydesk score --input texts.csv --output out.parquet --workers N` runs it: the read,
  the Ray Data job (the actors' start and model loading included) and the write.

Prints rows/s per phase and the ratios score/loop (target ≥ 1.5 on 2 cores) and
score/raw (target ≥ 0.7); writes bench/results/score_bench-<time>.json. Figures and how to
read them: docs/benchmarks.md (Batch scoring)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `pipelines`, `models` and `core` importable
    sys.path.insert(0, str(REPO))
# Ray's worker processes inherit the environment, not this sys.path.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.settings import AiSettings, Settings, get_settings  # noqa: E402

TARGETS = {"score_over_loop": 1.5, "score_over_raw": 0.7}
# The verdicts read the figures measured as they are; `*_idle` ratios are printed beside.
RAW_BATCH = 64
PHASES = ("raw", "loop", "score")
DATA = REPO / "models" / "data"
GREETINGS = {
    "en": ["Hi,", "Hello team,", "Hey there!", "Good morning,"],
    "es": ["Hola,", "Buenos días,", "Buenas tardes,"],
    "pt": ["Olá,", "Bom dia,", "Oi,"],
    "fr": ["Bonjour,", "Salut,", "Bonsoir,"],
    "de": ["Hallo,", "Guten Tag,", "Moin,"],
}
SIGNOFFS = {
    "en": ["Thanks", "Thank you!", "Cheers, Sam", "Regards, Priya"],
    "es": ["Gracias", "Saludos, Ana", "Un saludo"],
    "pt": ["Obrigado", "Abraço, João", "Obrigada!"],
    "fr": ["Merci", "Cordialement, Luc", "Merci d'avance"],
    "de": ["Danke", "Viele Grüße, Jonas", "Danke im Voraus"],
}
_NUMBER = re.compile(r"\d{3,}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Figures and how to read them: docs/benchmarks.md (Batch scoring).",
    )
    p.add_argument("--rows", type=int, default=50_000, help="rows scored (50000)")
    p.add_argument(
        "--loop-rows",
        type=int,
        default=None,
        help="rows through the single-process loop and the raw encoder (default: --rows)",
    )
    p.add_argument("--workers", type=int, default=None, help="scoring actors (one per CPU)")
    p.add_argument("--batch-size", type=int, default=64, help="rows per encoder pass (64)")
    p.add_argument("--loop-threads", default="1", help="encoder threads of the loop (1)")
    p.add_argument("--phases", default=",".join(PHASES), help=f"subset of {','.join(PHASES)}")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="built models ($RELAYDESK_TEST_MODELS_CACHE, else the data dir's)",
    )
    p.add_argument("--wait-load", type=float, default=2.5, help="1-minute load to wait for (2.5)")
    p.add_argument(
        "--wait-max", type=float, default=600.0, help="seconds to wait for it before starting (600)"
    )
    p.add_argument("--seed", type=int, default=7, help="text variations (7)")
    p.add_argument(
        "--results", type=Path, default=REPO / "bench" / "results", help="JSON output folder"
    )
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    args.loop_rows = args.loop_rows or args.rows
    args.phase_set = set(args.phases.split(","))
    unknown = args.phase_set - set(PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}; expected some of {', '.join(PHASES)}")
    if args.models_dir is None:
        cache = os.environ.get("RELAYDESK_TEST_MODELS_CACHE")
        args.models_dir = Path(cache) if cache else get_settings().models_dir
    args.workers = args.workers or os.cpu_count() or 1
    return args


# ----------------------------------------------------------------------------- texts
def support_texts(rows: int, seed: int) -> list[tuple[str, str]]:
    """`rows` (text, channel) pairs: the project's support messages, cycled with variations
    so that few repeat exactly (a repeated text would be no cheaper, but looks less real)."""
    messages = [
        json.loads(line)
        for name in ("support_train.jsonl", "support_test.jsonl")
        for line in (DATA / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    by_lang: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_lang.setdefault(str(m["lang"]), []).append(m)
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    while len(out) < rows:
        m = messages[len(out) % len(messages)] if len(out) < len(messages) else rng.choice(messages)
        lang = str(m["lang"])
        text = _NUMBER.sub(
            lambda g: str(rng.randrange(10 ** (len(g.group()) - 1), 10 ** len(g.group()))),
            str(m["text"]),
        )
        roll = rng.random()
        if roll < 0.25 and lang in GREETINGS:
            text = f"{rng.choice(GREETINGS[lang])} {text}"
        elif roll < 0.45 and lang in SIGNOFFS:
            text = f"{text}\n{rng.choice(SIGNOFFS[lang])}"
        elif roll < 0.55:  # an email: two messages of the same language
            other = rng.choice(by_lang[lang])
            text = f"{text}\n\n{other['text']}"
        out.append((text, str(m.get("channel") or "")))
    return out


def write_csv(path: Path, texts: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "channel"])
        for i, (text, channel) in enumerate(texts):
            writer.writerow([i, text, channel])


# ----------------------------------------------------------------------------- metering
class Weather:
    """Load and the CPU other people's processes took during a phase."""

    def __init__(self) -> None:
        me = psutil.Process()
        self._started = time.perf_counter()
        self._load = os.getloadavg()[0]
        self._busy = self._machine_busy()
        self._ours = self._tree_cpu(me)

    @staticmethod
    def _machine_busy() -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))

    @staticmethod
    def _tree_cpu(me: psutil.Process) -> float:
        total = 0.0
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        return total

    def done(self) -> dict[str, float]:
        seconds = time.perf_counter() - self._started
        ours = self._tree_cpu(psutil.Process()) - self._ours
        machine = self._machine_busy() - self._busy
        return {
            "load1_start": round(self._load, 2),
            "load1_end": round(os.getloadavg()[0], 2),
            "ours_cores": round(ours / seconds, 2),
            "other_cores": round(max(0.0, machine - ours) / seconds, 2),
        }


def wait_for_quiet(limit: float, below: float) -> dict[str, Any]:
    """Up to `limit` seconds for the 1-minute load to drop below `below`."""
    started = time.monotonic()
    load = os.getloadavg()[0]
    if limit > 0 and load >= below:
        print(f"waiting up to {limit:.0f} s for the load ({load:.2f}) to drop below {below}")
    while limit > 0 and load >= below and time.monotonic() - started < limit:
        time.sleep(10)
        load = os.getloadavg()[0]
    return {"waited_s": round(time.monotonic() - started), "load1": round(load, 2)}


# ----------------------------------------------------------------------------- phases
def raw_phase(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """The encoder alone in `workers` 1-thread actors, started and loaded before timing."""
    import ray

    @ray.remote(num_cpus=1)
    class EncodeOnly:
        def __init__(self, models_dir: str, kind: str) -> None:
            from threadpoolctl import threadpool_limits

            from models.encoder import load_encoder

            self._limits = threadpool_limits(limits=1)
            self.encoder = load_encoder(kind, Path(models_dir), 1)
            self.encoder.encode(["warm up"], "query")

        def run(self, texts: list[str]) -> tuple[int, float]:
            started = time.perf_counter()
            for start in range(0, len(texts), RAW_BATCH):
                self.encoder.encode(texts[start : start + RAW_BATCH], "query")
            return len(texts), time.perf_counter() - started

    kind = AiSettings().encoder
    actors = [EncodeOnly.remote(str(args.models_dir), kind) for _ in range(args.workers)]  # type: ignore[attr-defined]
    ray.get([a.run.remote([]) for a in actors])  # loaded
    shards = [texts[i :: args.workers] for i in range(args.workers)]
    weather = Weather()
    started = time.perf_counter()
    with tqdm(total=1, desc=f"raw encoder x{args.workers}", bar_format="{desc} {elapsed}"):
        results = ray.get([a.run.remote(s) for a, s in zip(actors, shards, strict=True)])
    seconds = time.perf_counter() - started
    for actor in actors:
        ray.kill(actor)
    return {
        "phase": "raw",
        "rows": len(texts),
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(texts) / seconds, 1),
        "per_actor_rows_per_s": [round(n / s, 1) for n, s in results],
        "processes": args.workers,
        "threads_per_process": 1,
        **weather.done(),
    }


def loop_phase(
    args: argparse.Namespace, texts: list[tuple[str, str]], threads: int
) -> dict[str, Any]:
    """analyzer.analyze in batches, in this one process."""
    from models.analyzer import Analyzer
    from models.service import AnalyzeRequest

    analyzer = Analyzer.load(
        args.models_dir, AiSettings(encoder_threads=threads), build_if_missing=False
    )
    analyzer.analyze([AnalyzeRequest("warm up")])
    weather = Weather()
    started = time.perf_counter()
    for start in tqdm(
        range(0, len(texts), args.batch_size), desc=f"loop t={threads}", unit="batch"
    ):
        chunk = texts[start : start + args.batch_size]
        analyzer.analyze([AnalyzeRequest(t, channel=c or None) for t, c in chunk])
    seconds = time.perf_counter() - started
    return {
        "phase": "loop",
        "rows": len(texts),
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(texts) / seconds, 1),
        "processes": 1,
        "threads_per_process": threads,
        **weather.done(),
    }


def score_phase(args: argparse.Namespace, source: Path, output: Path) -> dict[str, Any]:
    """`relaydesk score --input source --output output`, in this process, on the bench's Ray."""
    from pipelines.scoring import ScoreOptions, parse_tasks, score_file

    options = ScoreOptions(
        parse_tasks(None), args.batch_size, args.workers, models_dir=args.models_dir
    )
    weather = Weather()
    started = time.perf_counter()
    summary = score_file(Settings(), source, "text", output, options, channel_col="channel")
    seconds = time.perf_counter() - started
    if summary.scored != args.rows or summary.malformed:
        raise RuntimeError(f"scored {summary.scored} of {args.rows}, {summary.malformed} bad")
    return {
        "phase": "score",
        "rows": summary.scored,
        "seconds": round(seconds, 2),
        "rows_per_s": round(summary.scored / seconds, 1),
        "job_seconds": round(summary.seconds, 2),
        "job_rows_per_s": round(summary.rows_per_s, 1),
        "processes": summary.workers,
        "threads_per_process": 1,
        "versions": summary.versions,
        **weather.done(),
    }


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ray

    from pipelines.scoring import ensure_ray

    texts = support_texts(args.rows, args.seed)
    waited = wait_for_quiet(args.wait_max, args.wait_load)
    ensure_ray(Settings(), cpus=args.workers)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp:
        source = Path(tmp) / "texts.csv"
        write_csv(source, texts)
        if "raw" in args.phase_set:
            results.append(raw_phase(args, [t for t, _ in texts[: args.loop_rows]]))
        if "loop" in args.phase_set:
            for threads in (int(t) for t in args.loop_threads.split(",")):
                results.append(loop_phase(args, texts[: args.loop_rows], threads))
        if "score" in args.phase_set:
            results.append(score_phase(args, source, Path(tmp) / "scored.parquet"))
    ray.shutdown()
    report = summarize(args, texts, results)
    report["waited_for_quiet"] = waited
    print(json.dumps(report, indent=2))
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"score_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")
    missed = [k for k, v in report["targets"].items() if not v["met"]]
    return 1 if args.check and missed else 0


def summarize(
    args: argparse.Namespace, texts: list[tuple[str, str]], results: list[dict[str, Any]]
) -> dict[str, Any]:
    by = {(r["phase"], r["threads_per_process"]): r for r in results}
    score = by.get(("score", 1))
    loop = by.get(("loop", 1))
    raw = by.get(("raw", 1))
    for r in results:
        # Other people's work takes a different share of the cores in each phase: rows per
        # CPU-second of this run's own processes (Ray's included) compare the designs, and
        # times the cores a design can use give its rate on idle cores.
        r["rows_per_cpu_s"] = round(r["rows_per_s"] / max(r["ours_cores"], 0.01), 1)
        r["idle_rows_per_s"] = round(
            r["rows_per_cpu_s"] * r["processes"] * r["threads_per_process"], 1
        )
    ratios: dict[str, float] = {}
    if score and loop:
        ratios["score_over_loop"] = round(score["rows_per_s"] / loop["rows_per_s"], 2)
        ratios["score_over_loop_idle"] = round(
            score["idle_rows_per_s"] / loop["idle_rows_per_s"], 2
        )
    if score and raw:
        ratios["score_over_raw"] = round(score["rows_per_s"] / raw["rows_per_s"], 2)
        ratios["score_over_raw_idle"] = round(score["idle_rows_per_s"] / raw["idle_rows_per_s"], 2)
    chars = [len(t) for t, _ in texts]
    print()
    columns = ("phase", "procs x threads", "rows", "seconds", "rows/s", "ours (cores)",
               "others (cores)", "rows/CPU-s", "on idle cores")  # fmt: skip
    print("".join(f"{c:>16}" for c in columns))
    for r in results:
        shape = f"{r['processes']} x {r['threads_per_process']}"
        cells = (r["phase"], shape, r["rows"], r["seconds"], r["rows_per_s"], r["ours_cores"],
                 r["other_cores"], r["rows_per_cpu_s"], r["idle_rows_per_s"])  # fmt: skip
        print("".join(f"{c:>16}" for c in cells))
    for name, value in ratios.items():
        print(f"{name}: {value} (target >= {TARGETS[name.removesuffix('_idle')]})")
    return {
        "command": " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "load1": round(os.getloadavg()[0], 2)},
        "rows": args.rows,
        "mean_chars": round(sum(chars) / len(chars), 1),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "results": results,
        "ratios": ratios,
        "targets": {
            k: {"target": t, "value": ratios.get(k), "met": (ratios.get(k) or 0) >= t}
            for k, t in TARGETS.items()
        },
    }


if __name__ == "__main__":
    sys.exit(main())
