"""Following a table by its `updated_at`: what changed since the last look.

A writer stamps `updated_at` when it flushes, but its transaction may commit later than a
transaction stamped after it, and several rows can share a timestamp. So each pass re-reads
from `watermark - overlap` and drops row states already applied (a state is the row's id
with its version columns), and pages within a pass by (updated_at, id), so that a bulk
import with one timestamp cannot hold a pass on its first page. A periodic full pass (all
visible rows, nothing more) catches what the window missed: hard deletes, or a writer whose
clock is behind by more than the overlap."""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["ChangeFeed", "RowState"]


@dataclass(frozen=True, slots=True)
class RowState:
    """One state of a row: `version` holds the columns whose change matters (revision,
    status, ...); `visible` says whether the row belongs in the index in that state."""

    id: uuid.UUID
    updated_at: datetime
    version: Hashable
    visible: bool


class ChangeFeed:
    """The watermark of one table for one tenant, and the row states already applied."""

    def __init__(self, overlap: timedelta) -> None:
        self.overlap = overlap
        self.watermark: datetime | None = None
        self._applied: dict[uuid.UUID, tuple[Hashable, bool]] = {}

    @property
    def since(self) -> datetime | None:
        """Read rows updated at or after this (None: everything)."""
        return None if self.watermark is None else self.watermark - self.overlap

    def fresh(self, rows: Iterable[RowState]) -> list[RowState]:
        """The rows whose state differs from the one applied (new rows included)."""
        return [r for r in rows if self._applied.get(r.id) != (r.version, r.visible)]

    def applied(self, row: RowState) -> None:
        """Record the state the index now reflects (the watermark moves only with `seen`:
        a state loaded later than its page was listed may be newer than unread rows)."""
        self._applied[row.id] = (row.version, row.visible)

    def seen(self, rows: Iterable[RowState]) -> None:
        """Advance the watermark past a listed page once all of it is applied."""
        for row in rows:
            if self.watermark is None or row.updated_at > self.watermark:
                self.watermark = row.updated_at

    def vanished(self, visible_ids: set[uuid.UUID]) -> list[uuid.UUID]:
        """After a full pass that listed every visible row: applied-visible ids that are no
        longer among them (hard-deleted, or hidden by a change the window missed)."""
        gone = [
            row_id
            for row_id, (_version, visible) in self._applied.items()
            if visible and row_id not in visible_ids
        ]
        for row_id in gone:
            del self._applied[row_id]
        return gone
