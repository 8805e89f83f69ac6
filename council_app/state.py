"""The one door to session state for the API and the workflow.

It joins the store (durable), the flusher (coalesced progress) and the revision clock:
reads overlay this process's unflushed progress (read-your-writes), and ``update`` is a
compare-and-set read-modify-write that folds pending progress in first, so order is kept
and the write is durable when it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from council_app.flusher import ProgressFlusher
from council_app.revisions import RevisionClock
from council_app.store.base import (
    RevisionConflict,
    SessionRow,
    StateStore,
    StoredState,
    deep_merge,
)

T = TypeVar("T")

MAX_CAS_ATTEMPTS = 20


class SessionGone(LookupError):
    """The session has no state (never existed, or hard-deleted meanwhile)."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class SessionStates:
    def __init__(self, store: StateStore, flusher: ProgressFlusher, clock: RevisionClock) -> None:
        self.store = store
        self.flusher = flusher
        self.clock = clock

    def create(self, row: SessionRow, state: dict[str, Any]) -> None:
        self.store.create_session(row, state, self.clock.next())

    def meta(self, session_id: str) -> SessionRow | None:
        return self.store.get_session(session_id)

    def load(self, session_id: str) -> StoredState | None:
        stored = self.store.load(session_id)
        if stored is None:
            return None
        self.clock.observe(stored.revision)
        pending = self.flusher.peek(session_id)
        if pending:
            deep_merge(stored.state, pending)
        return stored

    def view(
        self, session_id: str, small_keys: tuple[str, ...], raw_keys: tuple[str, ...]
    ) -> DocumentView | None:
        """Like ``load`` for a response made of a few keys, the large ones as JSON text
        (``StateStore.read_view``), unflushed progress overlaid on the small ones.  None
        when the store has no such view, or pending progress touches a large key: the
        caller then loads and parses."""
        pending = self.flusher.peek(session_id)
        if pending and set(pending) & set(raw_keys):
            return None
        view = self.store.read_view(session_id, small_keys, raw_keys)
        if view is not None and pending:
            deep_merge(view.small, {k: v for k, v in pending.items() if k in small_keys})
        return view

    def hot(self, session_id: str) -> tuple[SessionRow, dict[str, Any]] | None:
        """Metadata and hot keys (what /status needs), with unflushed progress overlaid."""
        found = self.store.load_hot(session_id)
        if found is None:
            return None
        row, hot = found
        pending = self.flusher.peek(session_id)
        if pending:
            deep_merge(hot, pending)
        return row, hot

    def progress(
        self,
        session_id: str,
        patch: dict[str, Any],
        meta: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        """Coalesced, write-behind update of hot keys (execution_status, progress, tokens...).

        A background run passes its ``run_id``: see ``ProgressWrite`` for what that means.
        """
        self.flusher.update_progress(session_id, patch, meta, run_id)

    def update(self, session_id: str, mutate: Callable[[dict[str, Any]], T]) -> T:
        """Read, apply ``mutate`` (in place; may raise to abort), write if nobody else did.

        Retries on a lost compare-and-set.  Errors from ``mutate`` or the store leave this
        process's pending progress where it was.
        """
        entry = self.flusher.take(session_id)
        try:
            for _ in range(MAX_CAS_ATTEMPTS):
                stored = self.store.load(session_id)
                if stored is None:
                    raise SessionGone(session_id)
                self.clock.observe(stored.revision)
                state = stored.state
                if entry is not None:
                    deep_merge(state, entry.patch)
                result = mutate(state)
                state["updated_at"] = now_iso()
                try:
                    self.store.write_state(
                        session_id,
                        state,
                        expected_revision=stored.revision,
                        new_revision=self.clock.next(),
                    )
                except RevisionConflict:
                    continue
                return result
            raise RevisionConflict(f"{session_id}: too many concurrent writers")
        except BaseException:
            if entry is not None:
                self.flusher.restore(session_id, entry)
            raise
