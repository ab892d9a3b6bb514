"""Closed-loop load: N workers each send a request, wait for the answer, send the next.

Also meters the CPU time of the load generator, the API server's processes and
PostgreSQL from /proc, so each phase says where its CPU went on a shared 2-core machine
(Linux only; elsewhere the CPU columns stay empty)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

# One call of the phase: given the worker index and the sequence number, do the request;
# raise if it failed.
Call = Callable[[int, int], Awaitable[None]]
_TICK = os.sysconf("SC_CLK_TCK")
_HAS_PROC = Path("/proc/stat").exists()


def _stat(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by one process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces or parentheses: split after the last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(_children(current))
    return out


def _machine_busy() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _other_database(pid: int, database: str) -> bool:
    """A PostgreSQL backend or autovacuum worker of another database (a test run)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").split()
    except OSError:
        return True
    if title[1:3] == ["autovacuum", "worker"]:
        return title[3:4] != [database]
    # "postgres: USER DATABASE HOST(PORT) STATE"
    is_backend = len(title) > 3 and ("(" in title[3] or title[3] == "[local]")
    return is_backend and title[2] != database


@dataclass
class CpuMeter:
    """CPU seconds of the API server's process tree, of PostgreSQL (the postmaster's
    children, minus other databases' backends), of this load generator and of the whole
    machine, sampled twice a second while a phase runs so that processes ending during
    it (backends of closed pool connections) still count."""

    server_pid: int | None
    postmaster_pid: int | None
    database: str
    interval: float = 0.5
    _base: dict[int, float] = field(default_factory=dict)
    _last: dict[int, tuple[str, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _tick(self) -> None:
        groups = {"client": [os.getpid()]}
        if self.server_pid:
            groups["server"] = _descendants(self.server_pid)
        if self.postmaster_pid:
            groups["postgres"] = [
                p for p in _children(self.postmaster_pid) if not _other_database(p, self.database)
            ]
        for group, pids in groups.items():
            for pid in pids:
                cpu = _stat(pid)
                if cpu is not None:
                    self._last[pid] = (group, cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick()

    def start(self) -> None:
        self.enabled = _HAS_PROC
        if not self.enabled:
            return
        self._tick()
        self._base = {pid: cpu for pid, (_, cpu) in self._last.items()}
        self._machine = _machine_busy()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        if not self.enabled:
            return {}
        self._stop.set()
        self._thread.join()
        self._tick()
        out = {"client": 0.0, "server": 0.0, "postgres": 0.0}
        for pid, (group, cpu) in self._last.items():
            out[group] += cpu - self._base.get(pid, 0.0)
        out["machine"] = _machine_busy() - self._machine
        out["other"] = out["machine"] - out["client"] - out["server"] - out["postgres"]
        self._last.clear()
        return out


async def wait_quiet(limit_s: float, cores: float = 0.3) -> float:
    """On a shared machine, wait (up to `limit_s`) until other work keeps fewer than
    `cores` busy over a second; returns the seconds waited."""
    started = time.perf_counter()
    if limit_s <= 0 or not _HAS_PROC:
        return 0.0
    while time.perf_counter() - started < limit_s:
        before = _machine_busy()
        await asyncio.sleep(1.0)
        if _machine_busy() - before < cores:
            break
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class PhaseResult:
    name: str
    clients: int
    seconds: float
    ok: int
    errors: int
    latencies_ms: list[float] = field(repr=False)
    cpu_s: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict[str, Any]:
        done = max(1, self.ok + self.errors)
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "ok": self.ok,
            "errors": self.errors,
            "per_s": round(self.rate, 1),
            "p50_ms": round(self.pct(50), 2),
            "p95_ms": round(self.pct(95), 2),
            "p99_ms": round(self.pct(99), 2),
            "cpu_ms_per_request": {k: round(v * 1000 / done, 3) for k, v in self.cpu_s.items()},
            # Metering noise can make "other" (what is left of the machine) dip below 0.
            "cpu_cores_busy": {
                k: round(max(0.0, v) / self.seconds, 2) for k, v in self.cpu_s.items()
            },
            **self.extra,
        }


async def run_phase(
    name: str,
    call: Call,
    *,
    clients: int,
    duration: float,
    requests: int | None,
    meter: CpuMeter,
    warmup: float = 2.0,
    quiet: float = 0.0,
) -> PhaseResult:
    """Run `call` from `clients` workers for `duration` seconds (or `requests` calls),
    after `warmup` seconds whose results are dropped; first wait up to `quiet` seconds
    for the machine to be idle."""
    waited = await wait_quiet(quiet)
    seq = issued = 0
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    failures: list[str] = []
    recording = False
    stop_at = time.perf_counter() + warmup
    bar = tqdm(total=requests, desc=name, unit="req", leave=False, mininterval=0.5)

    async def worker(index: int) -> None:
        nonlocal seq, issued
        while True:
            if time.perf_counter() >= stop_at:
                return
            if recording:
                if requests is not None and issued >= requests:
                    return
                issued += 1
            # Never reset: calls use it for unique ids (provider message ids).
            seq += 1
            mine = seq
            started = time.perf_counter()
            try:
                await call(index, mine)
                ok = True
            except Exception as exc:
                ok = False
                if len(failures) < 5:
                    failures.append(f"{type(exc).__name__}: {exc}"[:500])
            elapsed = (time.perf_counter() - started) * 1000
            if not recording:
                continue
            if ok:
                counts["ok"] += 1
                latencies.append(elapsed)
            else:
                counts["errors"] += 1
            bar.update(1)

    if warmup > 0:
        await asyncio.gather(*(worker(i) for i in range(clients)))
    recording = True
    failures.clear()
    stop_at = time.perf_counter() + (duration if requests is None else 3600.0)
    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    seconds = time.perf_counter() - started
    cpu = meter.stop()
    bar.close()
    result = PhaseResult(name, clients, seconds, counts["ok"], counts["errors"], latencies, cpu)
    if failures:
        result.extra["first_errors"] = failures
    if waited >= 1.5:
        result.extra["waited_for_quiet_s"] = round(waited, 1)
    return result
