"""Revisions: the order of state writes, so that no write ever goes backwards.

A revision is microseconds since the epoch, bumped to stay strictly increasing in this
process and past every revision this process has read (a Lamport clock over wall time),
so writes from processes or hosts whose clocks differ a little still order correctly.
"""

from __future__ import annotations

import threading
import time


class RevisionClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last

    def observe(self, revision: int) -> None:
        """Make every later ``next()`` larger than a revision read from storage."""
        with self._lock:
            self._last = max(self._last, revision)
