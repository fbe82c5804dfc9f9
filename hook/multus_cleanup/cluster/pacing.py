"""How many node pods may be in flight at once: as many as the API server absorbs, up to `cluster.concurrency`.

A fixed number is wrong for everyone: 50 makes 5,000 nodes take 100 waves of pod time, while 1,000 at once
could overload a small control plane. So the limit follows the API server (TCP's AIMD): it starts at
`START`, grows by one with every create answered quickly, and halves when the API server pushes back (a 429
from API Priority and Fairness or a rate limit, or an answer slower than `slow_seconds`), at most once per
`slow_seconds` so that one slow moment is not counted many times.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

START = 50  # the old fixed default: where the run starts, before the API server has answered
FLOOR = 10  # never fewer in flight: a slow API server is slow for every request, not only ours


class InFlightLimit:
    def __init__(self, maximum: int, *, start: int = START, floor: int = FLOOR, slow_seconds: float = 1.0) -> None:
        self.maximum = maximum
        self.floor = min(floor, maximum)
        self.slow_seconds = slow_seconds
        self._value = min(start, maximum)
        self._lock = threading.Lock()
        self._last_decrease = float("-inf")
        self.decreases = 0
        self.highest = self._value

    @property
    def value(self) -> int:
        return self._value

    def observe(self, seconds: float, *, throttled: bool) -> None:
        """One create answered after `seconds`; `throttled`: a 429 came back meanwhile."""
        with self._lock:
            if throttled or seconds > self.slow_seconds:
                now = time.monotonic()
                if now - self._last_decrease < self.slow_seconds or self._value <= self.floor:
                    return
                self._last_decrease = now
                before, self._value = self._value, max(self.floor, self._value // 2)
                self.decreases += 1
                why = "answered 429 (too many requests)" if throttled else f"took {seconds:.1f} s for a create"
                log.info("the API server %s: at most %d node pods in flight now (was %d)", why, self._value, before)
            elif self._value < self.maximum:
                self._value += 1
                self.highest = max(self.highest, self._value)
