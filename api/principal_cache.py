"""Resolved credentials kept for a few seconds, so a request need not look its caller up.

Every authenticated request otherwise spends a statement on its API key or its token's
user: on a list page that is a third of the database work and a sixth of the API's CPU.
An entry lives `RELAYDESK_API__AUTH_CACHE_SECONDS` (0 turns the cache off), never past the
token's own expiry. A role change, a deactivation or a revoked key clears this process's
entries at once; another process (a second worker, another replica) keeps using what it
resolved for at most that long."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.deps import Principal

_MAX_ENTRIES = 4096
# (owner, credential) -> (principal, monotonic deadline). The owner is the runtime, so two
# apps in one process (tests, tools) never answer for each other's databases.
_entries: dict[tuple[int, str], tuple[Principal, float]] = {}


def cached(owner: object, credential: str) -> Principal | None:
    found = _entries.get((id(owner), credential))
    if found is None:
        return None
    principal, deadline = found
    if time.monotonic() >= deadline:
        _entries.pop((id(owner), credential), None)
        return None
    return principal


def remember(owner: object, credential: str, principal: Principal, ttl_s: float) -> None:
    if ttl_s <= 0:
        return
    if len(_entries) >= _MAX_ENTRIES:
        _entries.clear()
    _entries[(id(owner), credential)] = (principal, time.monotonic() + ttl_s)


def forget_all() -> None:
    """After a change to who may do what: the next request of every caller is looked up."""
    _entries.clear()
