"""A task a process runs in the background: one pass at a time, again at once while work
waits, else after an interval or when nudged; a failed pass is logged and tried again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

logger = logging.getLogger(__name__)


class BackgroundLoop:
    """Subclasses give `name` and `tick()`."""

    name = "background"

    def __init__(self, interval_s: float, *, grace_s: float = 30.0) -> None:
        self.interval_s = interval_s
        # How long `stop()` lets a pass in progress finish before cancelling it.
        self.grace_s = grace_s
        self.passes = 0
        self.failures = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> bool:
        """One pass; True when more work is waiting now."""
        raise NotImplementedError

    def notify(self) -> None:
        """Run the next pass now rather than after the interval."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                more = await self.tick()
                self.passes += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("%s failed; trying again", self.name)
                more = False
            if more or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            self._wake.clear()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        """Let the pass in progress finish (up to `grace_s`), then end the loop."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self.grace_s)
        except TimeoutError:
            logger.warning("%s did not finish within %.0f s; cancelled", self.name, self.grace_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception:
            logger.exception("%s ended with an error", self.name)
        self._task = None

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "running": self.running,
            "passes": self.passes,
            "failures": self.failures,
            "last_error": self.last_error,
        }
