"""Webhook channels resolved with their validated config, kept for a few seconds.

Every webhook body otherwise loads its channel and validates its config (a statement and
about a tenth of the body's CPU). Kept `RELAYDESK_API__AUTH_CACHE_SECONDS`, like resolved
credentials: the config holds the secrets that authenticate the webhook. Saving a channel
clears this process's entries; another process sees the change within that time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.ttl_cache import TtlCache


@dataclass(frozen=True)
class WebhookChannel:
    id: uuid.UUID
    tenant_id: uuid.UUID


# (channel id, channel type) -> (the channel, its validated config)
WEBHOOK_CHANNELS: TtlCache[tuple[WebhookChannel, Any]] = TtlCache()
