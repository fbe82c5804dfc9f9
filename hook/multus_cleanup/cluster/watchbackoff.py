"""When to watch again after a watch failed, and when to give up (the node pods' and the Multus pods' watches).

Kube already retried 429s, 5xx and dropped connections within the request; a watch that still fails waits a
capped, jittered exponential delay before the next try, and one that failed for `give_up_seconds` without a
single success ends the run with its error, instead of leaving nodes waiting for news that never comes.
"""

from __future__ import annotations

import random
import time

WATCH_GIVE_UP_SECONDS = 120.0


class WatchBackoff:
    def __init__(self, give_up_seconds: float | None = None) -> None:
        self.give_up_seconds = WATCH_GIVE_UP_SECONDS if give_up_seconds is None else give_up_seconds
        self._failing_since: float | None = None
        self._failures = 0

    def succeeded(self) -> None:
        self._failing_since, self._failures = None, 0

    def failed(self) -> float | None:
        """Seconds to wait before watching again; None once it has failed for too long."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        self._failures += 1
        if now - self._failing_since > self.give_up_seconds:
            return None
        delay: float = min(10.0, 0.5 * 2 ** min(self._failures - 1, 5))
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
