"""RelayDesk API benchmark on PostgreSQL at 100k tickets / 1M messages.

    source <(scripts/services env)
    .venv/bin/python bench/api_bench.py                  # seed once, then measure
    .venv/bin/python bench/api_bench.py --workers 1,2    # both server sizes, one run

Seeds its own database (`relaydesk_bench`, never the test one) with COPY, serves the real
app with uvicorn on loopback, and drives it with closed-loop HTTP clients: inbound
messages/s, ticket creates/s, conversation list and ticket search latency, and the same
list query sent straight to PostgreSQL with asyncpg as the floor. Prints a table and
writes bench/results/api_bench-<time>.json. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `bench`, `api` and `core` importable
    sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import uvloop  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench._http import LeanClient, LeanResponse  # noqa: E402
from bench._load import CpuMeter, PhaseResult, percentile, run_phase  # noqa: E402
from bench._queries import Fixture, load_fixture, sql_statements  # noqa: E402
from bench._seed import JWT_SECRET, asyncpg_dsn, seed_and_report  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://relaydesk:relaydesk@127.0.0.1:55432/relaydesk_bench"
TARGETS = {"inbound_per_s": 400.0, "p95_ms": 50.0, "api_over_sql": 3.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # The dev server of `scripts/services env`, in a database of the benchmark's own.
    dev = os.environ.get("RELAYDESK_DEV_DATABASE_URL")
    default = DEFAULT_URL
    if dev:
        default = make_url(dev).set(database="relaydesk_bench").render_as_string(False)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=default, help="SQLAlchemy URL of the bench DB")
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--clients", type=int, default=32, help="concurrent closed-loop clients")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    p.add_argument("--requests", type=int, help="requests per phase (instead of --duration)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds dropped before a phase")
    p.add_argument("--workers", default="1", help="uvicorn workers; a list runs each: 1,2")
    p.add_argument(
        "--http-client",
        default="lean",
        help="load generator's HTTP client, lean (bench/_http.py) or httpx; a list runs each",
    )
    p.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    p.add_argument("--seed-only", action="store_true")
    p.add_argument(
        "--phases",
        default="list,filtered,search,sql,single,inbound,create",
        help="subset of list,filtered,search,sql,single,inbound,create",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each phase, wait up to this long for other work on the machine to stop",
    )
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return p.parse_args(argv)


class Server:
    """`uvicorn bench._app:create` as a child process on a free loopback port."""

    def __init__(self, url: str, workers: int, extra_env: list[str], log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDESK_")}
        env.update(
            RELAYDESK_DATABASE_URL=url,
            RELAYDESK_JWT_SECRET=JWT_SECRET,
            RELAYDESK_API__RATE_LIMIT_PER_MINUTE="0",
            RELAYDESK_DATA_DIR=tempfile.mkdtemp(prefix="relaydesk-bench-"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        )
        for item in extra_env:
            name, _, value = item.partition("=")
            env[name] = value
        self.log = log
        cmd = [
            sys.executable, "-m", "uvicorn", "bench._app:create", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )

    async def ready(self) -> None:
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=self.base) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the API did not become ready; log:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log.exists() and not self.log.stat().st_size:
            self.log.unlink()


async def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine (for CPU)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:  # read while connected: the backend ends with the connection
        return _postgres_parent(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()


def _postgres_parent(pid: int) -> int | None:
    try:
        if "postgres" not in Path(f"/proc/{pid}/cmdline").read_text():
            return None  # a remote server: that pid is some local process
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _expect(response: httpx.Response | LeanResponse, what: str, *codes: int) -> None:
    if response.status_code not in codes:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")


def http_clients(kind: str, base: str, count: int) -> list[Any]:
    """`count` single-connection clients of one kind (see bench/_http.py for why lean)."""
    if kind == "lean":
        return [LeanClient(base) for _ in range(count)]
    if kind == "httpx":
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return [httpx.AsyncClient(base_url=base, timeout=60, limits=limits) for _ in range(count)]
    raise SystemExit(f"unknown --http-client {kind!r}: lean or httpx")


async def api_phases(
    args: argparse.Namespace,
    fx: Fixture,
    server: Server,
    meter: CpuMeter,
    tag: str,
    http_client: str,
) -> dict[str, PhaseResult]:
    wanted = set(args.phases.split(","))
    clients = http_clients(http_client, server.base, args.clients)
    results: dict[str, PhaseResult] = {}
    run = {"clients": args.clients, "duration": args.duration, "requests": args.requests,
           "meter": meter, "warmup": args.warmup, "quiet": args.wait_quiet}  # fmt: skip

    def bearer(i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {fx.tokens[i % len(fx.tokens)][0]}"}

    async def list_open(i: int, n: int) -> None:
        r = await clients[i].get("/v1/conversations?status=open&limit=50", headers=bearer(i))
        _expect(r, "list", 200)

    async def list_filtered(i: int, n: int) -> None:
        if n % 2:
            query = f"status=open&assignee_id={fx.tokens[n % len(fx.tokens)][1]}&limit=50"
        else:
            query = f"status=open&tag={fx.tags[n % len(fx.tags)]}&limit=50"
        r = await clients[i].get(f"/v1/conversations?{query}", headers=bearer(i))
        _expect(r, "filtered list", 200)

    by_class: dict[str, list[float]] = {k: [] for k in fx.search_terms}

    async def search(i: int, n: int) -> None:
        kind = list(fx.search_terms)[n % len(fx.search_terms)]
        terms = fx.search_terms[kind]
        started = time.perf_counter()
        r = await clients[i].get(
            "/v1/tickets", params={"q": terms[n % len(terms)], "limit": 50}, headers=bearer(i)
        )
        _expect(r, "search", 200)
        by_class[kind].append((time.perf_counter() - started) * 1000)

    async def inbound(i: int, n: int) -> None:
        r = await clients[i].post(
            "/v1/inbound", json=fx.inbound_body(f"{tag}.{n}"), headers={"X-API-Key": fx.api_key}
        )
        _expect(r, "inbound", 201)

    async def create(i: int, n: int) -> None:
        r = await clients[i].post("/v1/tickets", json=fx.ticket_body(n), headers=bearer(i))
        _expect(r, "ticket create", 201)

    single = {**run, "clients": 1, "duration": max(3.0, args.duration / 4), "requests": None}
    plan = [
        ("list", "api_list_open", list_open, run),
        ("filtered", "api_list_filtered", list_filtered, run),
        ("search", "api_search", search, run),
        ("single", "api_list_open@1", list_open, single),
        ("inbound", "api_inbound", inbound, run),
        ("create", "api_ticket_create", create, run),
    ]
    try:
        for key, name, call, options in plan:
            if key in wanted:
                results[name] = await run_phase(name, call, **options)
                if name == "api_search":
                    results[name].extra["p95_ms_by_term_class"] = {
                        k: round(percentile(v, 95), 1) for k, v in by_class.items()
                    }
                print(f"  {name}: {results[name].summary()['per_s']}/s", flush=True)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return results


async def sql_phases(
    args: argparse.Namespace, fx: Fixture, meter: CpuMeter
) -> dict[str, PhaseResult]:
    """The API's own list (and search) statements, sent straight to PostgreSQL."""
    wanted = set(args.phases.split(","))
    pool = await asyncpg.create_pool(
        asyncpg_dsn(args.database_url), min_size=args.clients, max_size=args.clients
    )
    list_sql, list_params, search_sql = await sql_statements(args.database_url, fx)
    terms = [t for group in fx.search_terms.values() for t in group]

    async def floor(i: int, n: int) -> None:
        async with pool.acquire() as conn:
            await conn.fetch(list_sql, *list_params)

    async def search_floor(i: int, n: int) -> None:
        async with pool.acquire() as conn:
            await conn.fetch(search_sql, fx.tenant_id, terms[n % len(terms)], 51)

    run = {"clients": args.clients, "duration": args.duration, "requests": args.requests,
           "meter": meter, "warmup": args.warmup, "quiet": args.wait_quiet}  # fmt: skip
    results: dict[str, PhaseResult] = {}
    try:
        if "sql" in wanted:
            results["sql_list_open"] = await run_phase("sql_list_open", floor, **run)
            results["sql_search"] = await run_phase("sql_search", search_floor, **run)
        if "single" in wanted:
            single = {**run, "clients": 1, "duration": max(3.0, args.duration / 4)}
            results["sql_list_open@1"] = await run_phase("sql_list_open@1", floor, **single)
    finally:
        await pool.close()
    return results


def report(results: dict[str, dict[str, PhaseResult]]) -> dict[str, Any]:
    """Print the table; return the verdicts on the targets."""
    head = f"{'phase':<22}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    head += f"{'errors':>7}  CPU ms/request: client server postgres | other work (cores)"
    verdicts: dict[str, Any] = {}
    floor = results.get("sql", {}).get("sql_list_open")
    floor_1 = results.get("sql", {}).get("sql_list_open@1")
    for config, phases in results.items():
        if not phases:
            continue
        print(f"\n[{config}]\n{head}")
        for name, r in phases.items():
            s = r.summary()
            cpu, cores = s["cpu_ms_per_request"], s["cpu_cores_busy"]
            cpu_txt = (
                f"{cpu['client']:>6.2f} {cpu['server']:>6.2f} {cpu['postgres']:>8.2f} | "
                f"{cores['other']:.2f}"
                if cpu
                else ""
            )
            print(f"{name:<22}{s['clients']:>8}{s['per_s']:>9.1f}{s['p50_ms']:>9.1f}"
                  f"{s['p95_ms']:>9.1f}{s['p99_ms']:>9.1f}{s['errors']:>7}  {cpu_txt}")  # fmt: skip
        if config == "sql":
            continue
        v: dict[str, Any] = {}
        if "api_inbound" in phases:
            rate = phases["api_inbound"].rate
            v["inbound_per_s"] = {"value": round(rate, 1), "target": ">= 400",
                                  "met": rate >= TARGETS["inbound_per_s"]}  # fmt: skip
        for name in ("api_list_open", "api_list_filtered", "api_search"):
            if name in phases:
                p95 = phases[name].pct(95)
                v[f"{name}_p95_ms"] = {"value": round(p95, 1), "target": "<= 50",
                                       "met": p95 <= TARGETS["p95_ms"]}  # fmt: skip
        if floor is not None and "api_list_open" in phases:
            api = phases["api_list_open"]
            for q in (50, 95):
                ratio = api.pct(q) / floor.pct(q)
                v[f"api_over_sql_p{q}"] = {"value": round(ratio, 1), "target": "<= 3",
                                           "met": ratio <= TARGETS["api_over_sql"]}  # fmt: skip
        if floor_1 is not None and "api_list_open@1" in phases:
            # Not the target's definition (32 clients): the cost of one request, no queueing.
            ratio = phases["api_list_open@1"].pct(50) / floor_1.pct(50)
            v["api_over_sql_p50_1_client"] = {"value": round(ratio, 1), "target": "<= 3",
                                              "met": ratio <= TARGETS["api_over_sql"],
                                              "info_only": True}  # fmt: skip
        verdicts[config] = v
        print(f"targets ({config}):")
        for key, item in v.items():
            mark = "met" if item["met"] else "MISSED"
            if item.get("info_only"):
                mark += " (for information: 1 client, not the target's 32)"
            print(f"  {key:<28}{item['value']:>10}  (target {item['target']}): {mark}")
    return verdicts


def write_results(
    name: str,
    stamp: str,
    args: argparse.Namespace,
    info: dict[str, Any],
    results: dict[str, dict[str, PhaseResult]],
    verdicts: dict[str, Any],
    total: float,
) -> int:
    """Print the run's length, write `bench/results/<name>-<stamp>.json` and return the exit
    status (1 when `--check` and a target was missed)."""
    print(f"\nbench run: {total:.0f} s (seeding included: {info['seeded_now']})")
    out = args.results / f"{name}-{stamp}.json"
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "seed": {k: v for k, v in info.items() if k != "tenants"},
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": {c: {n: r.summary() for n, r in p.items()} for c, p in results.items()},
        "targets": verdicts,
        "run_seconds": round(total, 1),
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"results: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    missed = any(
        not item["met"] for v in verdicts.values() for item in v.values() if "info_only" not in item
    )
    return 1 if args.check and missed else 0


async def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    info = await seed_and_report(
        args.database_url, tickets=args.tickets, messages=args.messages, reseed=args.reseed
    )
    if args.seed_only:
        return 0
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    database = str(make_url(args.database_url).database)
    results: dict[str, dict[str, PhaseResult]] = {}
    fx: Fixture | None = None
    for workers in [int(w) for w in args.workers.split(",")]:
        log = args.results / f"server-{stamp}-w{workers}.log"
        server = Server(args.database_url, workers, args.server_env, log)
        try:
            await server.ready()
            if fx is None:
                fx = await load_fixture(args.database_url, server.base, info)
                meter = CpuMeter(None, await postmaster_pid(args.database_url), database)
                print("SQL floor ...", flush=True)
                results["sql"] = await sql_phases(args, fx, meter)
            meter = CpuMeter(server.proc.pid, meter.postmaster_pid, database)
            kinds = args.http_client.split(",")
            for kind in kinds:
                print(f"API with {workers} uvicorn worker(s), {kind} client ...", flush=True)
                tag = f"{stamp}.w{workers}.{kind}.{random.randrange(10**6)}"
                config = f"workers={workers}" + (f" client={kind}" if len(kinds) > 1 else "")
                results[config] = await api_phases(args, fx, server, meter, tag, kind)
        finally:
            server.stop()
    verdicts = report(results)
    total = time.perf_counter() - started
    return write_results("api_bench", stamp, args, info, results, verdicts, total)


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
