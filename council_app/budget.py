"""Per-user daily spend limits (``USER_DAILY_BUDGET_USD``), enforced through the database.

Every priced LLM call adds its cost to the caller's row of ``user_spend`` for the UTC day
(an upsert-increment, so every worker and host adds to the same figure); a step that
would start once the day's spend has reached the budget is refused with 429 until UTC
midnight.  A call already paid for is always recorded, even past the budget: the check is
made before a step starts, never by dropping an answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from council_app.store import StoreError

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class BudgetExceeded(Exception):
    """The user's spend today has reached the daily budget (HTTP 429)."""

    def __init__(self, user: str, spent: float, budget: float, resets_at: datetime) -> None:
        self.user = user
        self.spent = spent
        self.budget = budget
        self.resets_at = resets_at
        super().__init__(
            f"Your daily budget of ${budget:.2f} is used up (${spent:.2f} spent today); "
            f"it resets at {resets_at.isoformat().replace('+00:00', 'Z')} (UTC midnight)"
        )

    def retry_after_s(self, now: datetime) -> int:
        return max(1, int((self.resets_at - now).total_seconds() + 0.999))


class SpendBook(Protocol):
    """The part of the store the ledger uses (``user_spend``), and nothing else."""

    def add_spend(self, user_id: str, day: date, cost_usd: float, calls: int = 1) -> None: ...

    def spend_on(self, user_id: str, day: date) -> float: ...


@dataclass(frozen=True)
class SpendToday:
    user: str
    day: date
    spent_usd: float
    budget_usd: float | None
    resets_at: datetime

    @property
    def remaining_usd(self) -> float | None:
        return None if self.budget_usd is None else max(0.0, self.budget_usd - self.spent_usd)


class SpendLedger:
    """``record`` after each priced call, ``check`` before a step starts, ``today`` for
    /api/me.  While the database refuses the write, amounts wait here and go with the
    next write (a paid call is never forgotten while the process lives)."""

    def __init__(
        self,
        book: SpendBook,
        daily_budget_usd: float | None,
        owner_of: Callable[[str], str | None] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._book = book
        self.daily_budget_usd = daily_budget_usd
        self._owner_of = owner_of
        self._clock = clock
        self._owners: dict[str, str] = {}  # session id -> owner (never changes)
        self._pending: dict[tuple[str, date], tuple[float, int]] = {}
        self._lock = threading.Lock()

    # -- recording ------------------------------------------------------------------------

    def record(self, user: str, cost_usd: float) -> None:
        if cost_usd <= 0 or not user:
            return
        key = (user, self._clock().date())
        with self._lock:
            usd, calls = self._pending.get(key, (0.0, 0))
            self._pending[key] = (usd + cost_usd, calls + 1)
        self.flush()

    def record_for_session(self, session_id: str, cost_usd: float) -> None:
        """The hook LLM calls use: they know the session, the ledger finds its owner."""
        user = self._owners.get(session_id)
        if user is None and self._owner_of is not None:
            try:
                user = self._owner_of(session_id)
            except StoreError as e:
                log.warning("Spend of %s not attributed yet: %s", session_id, e)
                user = None
            if user:
                self._owners[session_id] = user
        if user:
            self.record(user, cost_usd)
        elif cost_usd > 0:
            log.warning("Spend of $%.6f on %s has no owner to charge", cost_usd, session_id)

    def flush(self) -> bool:
        """Write what waits; True when nothing is left waiting."""
        with self._lock:
            pending, self._pending = self._pending, {}
        failed: dict[tuple[str, date], tuple[float, int]] = {}
        for (user, day), (usd, calls) in pending.items():
            try:
                self._book.add_spend(user, day, usd, calls)
            except StoreError as e:
                log.warning("Spend of %s not written yet (kept, retried): %s", user, e)
                failed[(user, day)] = (usd, calls)
        if failed:
            with self._lock:
                for key, (usd, calls) in failed.items():
                    old_usd, old_calls = self._pending.get(key, (0.0, 0))
                    self._pending[key] = (old_usd + usd, old_calls + calls)
        return not failed

    # -- reading and enforcing ------------------------------------------------------------

    def today(self, user: str) -> SpendToday:
        now = self._clock()
        day = now.date()
        with self._lock:
            waiting = sum(
                usd for (u, d), (usd, _) in self._pending.items() if (u, d) == (user, day)
            )
        spent = self._book.spend_on(user, day) + waiting
        resets = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
        return SpendToday(user, day, round(spent, 8), self.daily_budget_usd, resets)

    def spent_today(self, user: str) -> float:
        return self.today(user).spent_usd

    def check(self, user: str) -> None:
        """Raise ``BudgetExceeded`` when the user may not start another step today."""
        if self.daily_budget_usd is None:
            return
        spend = self.today(user)
        if spend.spent_usd >= self.daily_budget_usd:
            raise BudgetExceeded(user, spend.spent_usd, self.daily_budget_usd, spend.resets_at)

    def retry_after_s(self, e: BudgetExceeded) -> int:
        return e.retry_after_s(self._clock())
