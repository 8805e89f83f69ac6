"""Fail fast while PostgreSQL is known not to answer, instead of every request waiting out
its own deadline (which would hold every worker thread, and /api/health behind them).

After a wait hits the client-side deadline (``pg_deadline.DeadlineExceeded``) the breaker
opens: transactions raise ``StoreUnavailable`` at once for ``HOLD_OFF_S``.  Then one
transaction at a time is let through as a probe; its success (or a successful health
ping) closes the breaker, its failure opens it again.  Errors other than a silent server
(refused connections, SQL errors) never open it: they are already fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from council_app.store.base import StoreUnavailable
from council_app.store.pg_deadline import DeadlineExceeded

HOLD_OFF_S = 2.0


def _hang_in(error: BaseException) -> DeadlineExceeded | None:
    return next((x for x in _chain(error) if isinstance(x, DeadlineExceeded)), None)


class HangBreaker:
    def __init__(self, hold_off_s: float = HOLD_OFF_S) -> None:
        self.hold_off_s = hold_off_s
        self.opened = 0  # times a hang was detected (for tests and health)
        self._until = 0.0  # monotonic time the hold-off ends; 0 when closed
        self._reason = ""
        self._probe = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._until > 0.0

    def reset(self) -> None:
        self._until = 0.0

    @contextmanager
    def guard(self) -> Iterator[None]:
        probing = False
        if self._until:
            if time.monotonic() < self._until or not self._probe.acquire(blocking=False):
                raise StoreUnavailable(
                    f"PostgreSQL unavailable: no answer ({self._reason}); "
                    f"not asking again for up to {self.hold_off_s:g} s"
                )
            probing = True
        try:
            yield
        except BaseException as e:
            hang = _hang_in(e)
            if hang is not None:
                self._reason = str(hang)
                self._until = time.monotonic() + self.hold_off_s
                self.opened += 1
            raise
        else:
            if probing:
                self._until = 0.0
        finally:
            if probing:
                self._probe.release()


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 8:
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            yield orig
        current = current.__cause__ or current.__context__
        seen += 1
