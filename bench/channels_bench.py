"""WhatsApp webhook benchmark: signed bodies posted to `POST /webhooks/whatsapp/{channel}`.

    source <(scripts/services env)
    .venv/bin/python bench/channels_bench.py --wait-quiet 60
    .venv/bin/python bench/channels_bench.py --workers 1,2 --check

Seeds its own database (`relaydesk_chbench`, the same data as bench/api_bench.py), gives
the seeded WhatsApp channel an app secret, serves the real app with uvicorn on loopback
(api_bench's server) and drives it with closed-loop clients sending Meta's webhook bodies
signed with `X-Hub-Signature-256`: text messages from returning and new customers, unique
wamids, some bodies with 2-3 messages and a few redeliveries of a body already stored.
The webhook answers once every message of the body is committed, so a request's latency
is the time until its messages are stored. The baseline phase sends the same messages to
`POST /v1/inbound` (API key), one request per message, so webhook/inbound is the
connector's own cost. Prints a table and writes bench/results/channels_bench-<time>.json.
See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `bench`, `api` and `core` importable
    sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import uvloop  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench._corpus import TextGen  # noqa: E402
from bench._http import LeanClient  # noqa: E402
from bench._load import Call, CpuMeter, PhaseResult, run_phase  # noqa: E402
from bench._queries import Fixture, load_fixture  # noqa: E402
from bench._seed import asyncpg_dsn, seed_and_report  # noqa: E402
from bench.api_bench import Server, postmaster_pid, write_results  # noqa: E402
from connectors.meta.signature import sign  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://relaydesk:relaydesk@127.0.0.1:55432/relaydesk_chbench"
TARGET_BODIES_PER_S = 400.0
APP_SECRET = "relaydesk-bench-app-secret"
PHONE_NUMBER_ID = "1000000001"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    dev = os.environ.get("RELAYDESK_DEV_DATABASE_URL")
    default = DEFAULT_URL
    if dev:
        default = make_url(dev).set(database="relaydesk_chbench").render_as_string(False)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=default, help="SQLAlchemy URL of the bench DB")
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--clients", type=int, default=32, help="concurrent closed-loop clients")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds dropped before a phase")
    p.add_argument("--workers", default="1", help="uvicorn workers; a list runs each: 1,2")
    p.add_argument("--multi", type=float, default=0.15, help="share of bodies with 2-3 messages")
    p.add_argument("--duplicates", type=float, default=0.02, help="share of redelivered bodies")
    p.add_argument("--returning", type=float, default=0.7, help="share of seeded customers")
    p.add_argument(
        "--phases", default="webhook,inbound", help="subset of webhook,inbound (in that order)"
    )
    p.add_argument("--reseed", action="store_true", help="drop and seed the database again")
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


@dataclass
class Message:
    wa_id: str
    name: str | None
    text: str
    wamid: str


@dataclass
class Mix:
    """The bodies both phases send: each a list of messages; a redelivery repeats one
    whose first delivery was answered (as Meta retries after a lost answer)."""

    fx: Fixture
    prefix: str
    args: argparse.Namespace
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    answered: list[list[Message]] = field(default_factory=list)
    new_customers: int = 0

    def __post_init__(self) -> None:
        self.text = TextGen(self.rng)
        self.returning = [value for kind, value in self.fx.identities if kind == "whatsapp"]
        # New customers' numbers, unique to this run and phase.
        self.digits = f"{random.randrange(10**7):07d}"

    def body(self, n: int) -> tuple[list[Message], bool]:
        """(messages of body n, whether it is a redelivery)."""
        if self.answered and self.rng.random() < self.args.duplicates:
            return self.rng.choice(self.answered), True
        count = self.rng.choice((2, 3)) if self.rng.random() < self.args.multi else 1
        if self.rng.random() < self.args.returning:
            wa_id, name = self.rng.choice(self.returning), None
        else:
            self.new_customers += 1
            wa_id, name = f"99{self.digits}{self.new_customers:07d}", self.text.name()
        # A body's messages come from one customer, as a quick burst of texts does.
        return [
            Message(wa_id, name, self.text.inbound_text(), f"wamid.{self.prefix}.{n}.{k}")
            for k in range(count)
        ], False


def webhook_bytes(messages: list[Message]) -> bytes:
    """Meta's WhatsApp Cloud API webhook body (whatsapp_business_account, field messages)."""
    now = str(int(time.time()))
    contacts = {m.wa_id: m.name or "Customer" for m in messages}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": n}, "wa_id": w} for w, n in contacts.items()],
        "messages": [
            {
                "from": m.wa_id,
                "id": m.wamid,
                "timestamp": now,
                "type": "text",
                "text": {"body": m.text},
            }
            for m in messages
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "2000000002", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(body).encode()


@dataclass
class Tally:
    """Messages stored and duplicates seen, by the time each answer came, so the counts
    can be cut to the phase's measured window (the meter's start and stop)."""

    events: list[tuple[float, int, int]] = field(default_factory=list)

    def add(self, stored: int, duplicates: int) -> None:
        self.events.append((time.perf_counter(), stored, duplicates))

    def within(self, start: float, stop: float) -> tuple[int, int]:
        inside = [(s, d) for t, s, d in self.events if start <= t <= stop]
        return sum(s for s, _ in inside), sum(d for _, d in inside)

    @property
    def stored(self) -> int:
        return sum(s for _, s, _ in self.events)


class WindowMeter(CpuMeter):
    """CpuMeter that also remembers when the measured window started and stopped."""

    window: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self.window = (time.perf_counter(), 0.0)
        super().start()

    def stop(self) -> dict[str, float]:
        out = super().stop()
        self.window = (self.window[0], time.perf_counter())
        return out


async def whatsapp_channel(base: str, fx: Fixture) -> str:
    """The seeded WhatsApp channel, given a WhatsApp Cloud API config with an app secret."""
    channel_id = fx.channels["whatsapp"]
    config = {
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": "2000000002",
        "access_token": "bench-token",
        "app_secret": APP_SECRET,
        "verify_token": "bench-verify",
        # Never called: text messages fetch no media.
        "graph_api_base_url": "http://127.0.0.1:9/v21.0",
    }
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        r = await client.patch(
            f"/v1/channels/{channel_id}",
            json={"config": config},
            headers={"X-API-Key": fx.api_key},
        )
        if r.status_code != 200:
            raise RuntimeError(f"channel config: {r.status_code} {r.text[:300]}")
    return channel_id


async def phases(
    args: argparse.Namespace, fx: Fixture, server: Server, meter: WindowMeter, tag: str
) -> dict[str, PhaseResult]:
    channel_id = await whatsapp_channel(server.base, fx)
    clients = [LeanClient(server.base) for _ in range(args.clients)]
    results: dict[str, PhaseResult] = {}
    try:
        for name in args.phases.split(","):
            if name not in ("webhook", "inbound"):
                raise SystemExit(f"unknown phase {name!r}: webhook or inbound")
            mix, tally = Mix(fx, f"{tag}.{name}", args), Tally()
            sender = webhook_call if name == "webhook" else inbound_call
            call = sender(clients, channel_id, fx.api_key, mix, tally)
            result = await run_phase(
                name, call, clients=args.clients, duration=args.duration, requests=None,
                meter=meter, warmup=args.warmup, quiet=args.wait_quiet,
            )  # fmt: skip
            stored, duplicates = tally.within(*meter.window)
            result.extra.update(
                messages_stored=stored,
                messages_per_s=round(stored / result.seconds, 1),
                duplicate_messages_seen=duplicates,
                new_customers=mix.new_customers,
                stored_rows_match=await rows_match(args, mix.prefix, tally.stored),
            )
            results[name] = result
            print(f"  {name}: {result.rate:.1f} bodies/s, {stored / result.seconds:.1f} msg/s")
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return results


def webhook_call(
    clients: list[LeanClient], channel_id: str, api_key: str, mix: Mix, tally: Tally
) -> Call:
    """One signed body to the WhatsApp webhook; its answer says how many were stored."""
    path = f"/webhooks/whatsapp/{channel_id}"

    async def call(i: int, n: int) -> None:
        messages, again = mix.body(n)
        raw = webhook_bytes(messages)
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": sign(raw, APP_SECRET)}  # fmt: skip
        r = await clients[i].post(path, content=raw, headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"webhook: {r.status_code} {r.text[:300]}")
        answer = r.json()
        if answer["stored"] + answer["duplicates"] != len(messages) or (again and answer["stored"]):
            raise RuntimeError(f"webhook stored {answer} of {len(messages)}")
        tally.add(answer["stored"], answer["duplicates"])
        if not again:
            mix.answered.append(messages)

    return call


def inbound_call(
    clients: list[LeanClient], channel_id: str, api_key: str, mix: Mix, tally: Tally
) -> Call:
    """The same body's messages to `POST /v1/inbound`, one request a message (201 stored,
    200 already stored)."""
    headers = {"X-API-Key": api_key}

    async def call(i: int, n: int) -> None:
        messages, again = mix.body(n)
        stored = 0
        for m in messages:
            customer: dict[str, Any] = {"external_id": m.wa_id}
            if m.name:
                customer["name"] = m.name
            body = {"channel_id": channel_id, "customer": customer,
                    "text": m.text, "provider_message_id": m.wamid}  # fmt: skip
            r = await clients[i].post("/v1/inbound", json=body, headers=headers)
            if r.status_code not in (200, 201) or (r.status_code == 201) == again:
                raise RuntimeError(f"inbound: {r.status_code} {r.text[:300]}")
            stored += r.status_code == 201
        tally.add(stored, len(messages) - stored)
        if not again:
            mix.answered.append(messages)

    return call


async def rows_match(args: argparse.Namespace, prefix: str, answered: int) -> bool:
    """The answers' stored count is what PostgreSQL holds (warm-up included): nothing
    acknowledged was lost, no redelivery stored twice."""
    conn = await asyncpg.connect(asyncpg_dsn(args.database_url))
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE provider_message_id LIKE $1",
            f"%{prefix}.%",
        )
    finally:
        await conn.close()
    if rows != answered:
        print(f"  stored rows {rows} != {answered} acknowledged", flush=True)
    return bool(rows == answered)


def report(results: dict[str, dict[str, PhaseResult]]) -> dict[str, Any]:
    head = f"{'phase':<10}{'bodies/s':>9}{'msg/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
    head += f"{'errors':>7}  CPU ms/body: client server postgres | other work (cores)"
    verdicts: dict[str, Any] = {}
    for config, found in results.items():
        print(f"\n[{config}]\n{head}")
        for name, r in found.items():
            s = r.summary()
            cpu, cores = s["cpu_ms_per_request"], s["cpu_cores_busy"]
            cpu_txt = (
                f"{cpu['client']:>6.2f} {cpu['server']:>6.2f} {cpu['postgres']:>8.2f} | "
                f"{cores['other']:.2f}"
                if cpu
                else ""
            )
            print(f"{name:<10}{s['per_s']:>9.1f}{s['messages_per_s']:>8.1f}{s['p50_ms']:>8.1f}"
                  f"{s['p95_ms']:>8.1f}{s['p99_ms']:>8.1f}{s['errors']:>7}  {cpu_txt}")  # fmt: skip
        v: dict[str, Any] = {}
        if "webhook" in found:
            rate = found["webhook"].rate
            v["webhook_bodies_per_s"] = {"value": round(rate, 1), "target": ">= 400",
                                         "met": rate >= TARGET_BODIES_PER_S}  # fmt: skip
            match = found["webhook"].extra["stored_rows_match"]
            v["stored_rows_match"] = {"value": match, "target": "true", "met": match}
            v["errors"] = {"value": found["webhook"].errors, "target": "0",
                           "met": found["webhook"].errors == 0}  # fmt: skip
        if "webhook" in found and "inbound" in found:
            w, i = found["webhook"], found["inbound"]
            v["webhook_over_inbound_msg_per_s"] = {
                "value": round(w.extra["messages_per_s"] / max(i.extra["messages_per_s"], 1e-9), 2),
                "target": "info", "met": True, "info_only": True,
            }  # fmt: skip
        verdicts[config] = v
        print(f"targets ({config}):")
        for key, item in v.items():
            mark = "info" if item.get("info_only") else ("met" if item["met"] else "MISSED")
            print(f"  {key:<32}{item['value']!s:>10}  (target {item['target']}): {mark}")
    return verdicts


async def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    info = await seed_and_report(
        args.database_url, tickets=args.tickets, messages=args.messages, reseed=args.reseed
    )
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    database = str(make_url(args.database_url).database)
    results: dict[str, dict[str, PhaseResult]] = {}
    fx: Fixture | None = None
    postmaster: int | None = None
    for workers in [int(w) for w in args.workers.split(",")]:
        log = args.results / f"server-{stamp}-w{workers}.log"
        server = Server(args.database_url, workers, args.server_env, log)
        try:
            await server.ready()
            if fx is None:
                fx = await load_fixture(args.database_url, server.base, info)
                postmaster = await postmaster_pid(args.database_url)
            meter = WindowMeter(server.proc.pid, postmaster, database)
            print(f"{workers} uvicorn worker(s) ...", flush=True)
            tag = f"bench.{stamp}.w{workers}.{random.randrange(10**6):06d}"
            results[f"workers={workers}"] = await phases(args, fx, server, meter, tag)
        finally:
            server.stop()
    verdicts = report(results)
    total = time.perf_counter() - started
    return write_results("channels_bench", stamp, args, info, results, verdicts, total)


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
