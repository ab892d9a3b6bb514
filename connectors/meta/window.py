"""Meta's messaging windows: how long after the customer's last message a business may
answer freely."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.db.types import utcnow

# WhatsApp's customer-service window and Instagram's standard messaging window.
STANDARD_WINDOW = timedelta(hours=24)


def within(last_inbound_at: datetime | None, window: timedelta = STANDARD_WINDOW) -> bool:
    return last_inbound_at is not None and utcnow() - last_inbound_at <= window
