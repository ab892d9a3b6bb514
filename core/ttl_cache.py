"""A small in-process cache of resolved lookups, each kept for a given number of seconds.

Used where every request would otherwise spend a statement on something that rarely
changes: the caller behind an API key or token (api/principal_cache.py), a webhook's
channel and its config (api/services/meta_webhook.py). A change made through this
process clears the cache at once; another process sees it once its entries expire."""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        # (owner, key) -> (value, monotonic deadline). The owner is the process's runtime,
        # so two apps in one process (tests, tools) never answer for each other's data.
        self._entries: dict[tuple[int, Hashable], tuple[V, float]] = {}

    def get(self, owner: object, key: Hashable) -> V | None:
        found = self._entries.get((id(owner), key))
        if found is None:
            return None
        value, deadline = found
        if time.monotonic() >= deadline:
            self._entries.pop((id(owner), key), None)
            return None
        return value

    def put(self, owner: object, key: Hashable, value: V, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[(id(owner), key)] = (value, time.monotonic() + ttl_s)

    def clear(self) -> None:
        self._entries.clear()
