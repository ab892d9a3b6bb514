"""Agreement counts of challengers run in shadow, per task and version pair.

Analyses run in worker threads, so the counts sit behind a lock. A listener (the Serve
replica's Prometheus counter) hears every batch's counts as they are recorded."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from models.service import ShadowAgreement

logger = logging.getLogger(__name__)

Listener = Callable[[str, str, str, int, int], None]


class ShadowTally:
    def __init__(self, listener: Listener | None = None) -> None:
        self.listener = listener
        self._counts: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def record(self, task: str, champion: str, challenger: str, compared: int, agreed: int) -> None:
        """Add `agreed` of `compared` answers of `challenger` that matched `champion`'s."""
        if not compared:
            return
        key = (task, champion, challenger)
        with self._lock:
            seen, same = self._counts.get(key, (0, 0))
            self._counts[key] = (seen + compared, same + agreed)
        if self.listener is not None:
            try:
                self.listener(task, champion, challenger, compared, agreed)
            except Exception:  # a metrics hiccup must not cost the batch its answers
                logger.exception("shadow listener failed")

    def report(self) -> list[ShadowAgreement]:
        with self._lock:
            counts = sorted(self._counts.items())
        return [ShadowAgreement(t, c, s, n, a) for (t, c, s), (n, a) in counts]
