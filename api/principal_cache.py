"""Resolved credentials kept for a few seconds, so a request need not look its caller up.

Every authenticated request otherwise spends a statement on its API key or its token's
user: on a list page that is a third of the database work and a sixth of the API's CPU.
An entry lives `RELAYDESK_API__AUTH_CACHE_SECONDS` (0 turns the cache off), never past the
token's own expiry. A role change, a deactivation or a revoked key clears this process's
entries at once; another process (a second worker, another replica) keeps using what it
resolved for at most that long."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.ttl_cache import TtlCache

if TYPE_CHECKING:
    from api.deps import Principal

PRINCIPALS: TtlCache[Principal] = TtlCache()
