"""An open-loop load of `POST /v1/ai/analyze` at a fixed rate, in a background thread,
recording which intent head version answered each request (for the hot-swap test and
bench/swap_bench.py).

Open loop: request i is sent at start + i / rate whatever the answers before it do, so a
stall during a swap shows up as latency and failures instead of hiding behind a slower
send rate."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Shot:
    sent: float  # time.monotonic() the request was due (and sent)
    done: float
    status: int  # 0: no response (connection error, timeout)
    version: str | None  # model_versions["intent"] of the answer
    label: str | None  # the intent label
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.version is not None


class LoadLoop:
    """`rate` requests/s over `texts`, round robin, until `stop()`."""

    def __init__(
        self, url: str, api_key: str, texts: Sequence[str], rate: float = 50.0, timeout: float = 30
    ) -> None:
        self.url, self.api_key, self.texts = url, api_key, list(texts)
        self.rate, self.timeout = rate, timeout
        self.shots: list[Shot] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> LoadLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Shot]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 10)
        return sorted(self.shots, key=lambda s: s.sent)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        headers = {"X-API-Key": self.api_key}
        async with httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=self.timeout, limits=limits
        ) as client:
            start = time.monotonic()
            pending: set[asyncio.Task[None]] = set()
            for i, text in enumerate(itertools.cycle(self.texts)):
                if self._stop.is_set():
                    break
                due = start + i / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(self._one(client, text, due))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)

    async def _one(self, client: httpx.AsyncClient, text: str, due: float) -> None:
        try:
            response = await client.post("/v1/ai/analyze", json={"text": text})
        except httpx.HTTPError as exc:
            self.shots.append(Shot(due, time.monotonic(), 0, None, None, repr(exc)))
            return
        done = time.monotonic()
        if response.status_code != 200:
            self.shots.append(Shot(due, done, response.status_code, None, None, response.text))
            return
        body = response.json()
        version = body.get("model_versions", {}).get("intent")
        self.shots.append(Shot(due, done, 200, version, body["intent"]["label"]))
