"""The channels' background work in one process: the delivery worker, the IMAP poller of
email channels and the periodic WhatsApp template sync, each turned off by its setting
(`RELAYDESK_CHANNELS__DELIVERY_WORKER`, `..._EMAIL_POLLER`,
`..._TEMPLATE_SYNC_INTERVAL_S=0`).

`relaydesk up --no-serve` runs them in the API process (api/app.py, `channel_workers=True`);
on Ray Serve one `ChannelWorkers` deployment replica runs them (serve/deployments/
channel_workers.py), whatever the number of API replicas."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from api.services.background import BackgroundLoop
from api.services.delivery_worker import DeliveryWorker
from api.services.email_poll import poll_all
from api.services.templates import TemplateSyncFailed, due_for_sync, sync_templates
from core.runtime import Runtime
from core.settings import ChannelSettings

logger = logging.getLogger(__name__)

# How often the template sync looks for channels due (each is synced once per interval).
TEMPLATE_CHECK_S = 60.0


class EmailPoller(BackgroundLoop):
    """Every active email channel with IMAP settings, every `email_poll_interval_s`
    (at once again while a mailbox has more than one batch waiting)."""

    name = "email-poller"

    def __init__(self, runtime: Runtime, settings: ChannelSettings) -> None:
        super().__init__(settings.email_poll_interval_s, grace_s=2 * settings.http_timeout_s)
        self.runtime = runtime
        self.limit = settings.email_poll_limit
        self.stored = 0

    async def tick(self) -> bool:
        results = await poll_all(self.runtime, limit=self.limit)
        for channel_id, result in results.items():
            self.stored += result.stored
            for error in result.errors:
                logger.warning("email channel %s: %s", channel_id, error)
        return any(result.more for result in results.values())

    def status(self) -> dict[str, Any]:
        return {**super().status(), "stored": self.stored}


class TemplateResync(BackgroundLoop):
    """Syncs each active WhatsApp channel's templates once per `template_sync_interval_s`
    (a channel never synced, at once)."""

    name = "template-sync"

    def __init__(self, runtime: Runtime, settings: ChannelSettings) -> None:
        super().__init__(min(TEMPLATE_CHECK_S, settings.template_sync_interval_s))
        self.runtime = runtime
        self.every = timedelta(seconds=settings.template_sync_interval_s)
        self.synced = 0

    async def tick(self) -> bool:
        for channel_id in await due_for_sync(self.runtime, self.every):
            try:
                result = await sync_templates(self.runtime, channel_id)
            except TemplateSyncFailed as exc:
                logger.warning("templates of channel %s: %s", channel_id, exc.message)
                continue
            self.synced += 1
            logger.info("channel %s: %d templates synced", channel_id, result.template_count)
        return False

    def status(self) -> dict[str, Any]:
        return {**super().status(), "synced": self.synced}


class ChannelWorkers:
    """Starts and stops the enabled loops together."""

    def __init__(self, runtime: Runtime, settings: ChannelSettings | None = None) -> None:
        settings = settings or runtime.settings.channels
        self.delivery = DeliveryWorker(runtime, settings) if settings.delivery_worker else None
        self.email = EmailPoller(runtime, settings) if settings.email_poller else None
        self.templates = (
            TemplateResync(runtime, settings) if settings.template_sync_interval_s > 0 else None
        )

    @property
    def loops(self) -> list[BackgroundLoop]:
        return [loop for loop in (self.delivery, self.email, self.templates) if loop is not None]

    def start(self) -> None:
        for loop in self.loops:
            loop.start()
        names = ", ".join(loop.name for loop in self.loops) or "none"
        logger.info("channel workers running: %s", names)

    def reply_queued(self) -> None:
        """Wake the delivery worker: a reply was just stored for it."""
        if self.delivery is not None:
            self.delivery.notify()

    async def stop(self) -> None:
        await asyncio.gather(*(loop.stop() for loop in self.loops))

    def status(self) -> dict[str, Any]:
        return {loop.name: loop.status() for loop in self.loops}
