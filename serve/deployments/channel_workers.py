"""`ChannelWorkers`: the channels' background work (reply delivery, IMAP polling of email
channels, WhatsApp template sync: api/services/channel_workers.py) in one replica.

Why a deployment of its own, and not the `Api` replicas: those scale (`api_replicas`), and
each would run its own poller and template sync; one replica of this deployment runs them
once, however many API replicas there are. Being part of the app, it starts and stops with
it (`relaydesk up`, or `serve deploy serve/config.yaml` on a cluster), and Serve replaces
it if it dies (its claimed replies are claimed again when their lease ends). A rolling
update may briefly run an old and a new replica together: harmless, as workers share the
queue (`FOR UPDATE SKIP LOCKED`), and the mailbox cursors and Message-IDs keep a message
from being stored twice. The `Api` replicas wake it through a handle after storing a reply
(`nudge`), so a reply leaves without waiting for the poll interval."""

from __future__ import annotations

import logging
from typing import Any

from ray import serve

from api.services.channel_workers import ChannelWorkers
from core.runtime import Runtime
from serve.options import AppArgs

logger = logging.getLogger(__name__)


@serve.deployment(name="ChannelWorkers", num_replicas=1, max_ongoing_requests=64)
class ChannelWorkersDeployment:
    def __init__(self, args: AppArgs) -> None:
        # Built on the replica's event loop (Serve calls a synchronous constructor there),
        # so the loops start now and run as long as the replica.
        self._runtime = Runtime.build(args.settings())
        self._workers = ChannelWorkers(self._runtime)
        self._workers.start()

    async def nudge(self) -> None:
        """A reply was stored: send it now."""
        self._workers.reply_queued()

    async def status(self) -> dict[str, Any]:
        return self._workers.status()

    async def check_health(self) -> None:
        """Serve replaces the replica if a loop has ended (they only end when stopped)."""
        stopped = [loop.name for loop in self._workers.loops if not loop.running]
        if stopped:
            raise RuntimeError(f"channel workers not running: {', '.join(stopped)}")

    async def __del__(self) -> None:
        await self._workers.stop()
        await self._runtime.close()
