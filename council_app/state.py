"""The one door to session state for the API and the workflow.

It joins the store (durable), the flusher (coalesced progress) and the revision clock:
reads overlay this process's unflushed progress (read-your-writes), and ``update`` is a
compare-and-set read-modify-write that folds pending progress in first, so order is kept
and the write is durable when it returns.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from council_app.flusher import FlusherStats, ProgressFlusher
from council_app.revisions import RevisionClock
from council_app.store.base import (
    DocumentView,
    HotRow,
    MemberCheckpoint,
    ProgressWrite,
    RevisionConflict,
    SessionRow,
    StateStore,
    StoredState,
    deep_merge,
)

T = TypeVar("T")

MAX_CAS_ATTEMPTS = 20
READ_ATTEMPTS = 3  # a read spanning a landed flush is repeated (see _read_own)


class SessionGone(LookupError):
    """The session has no state (never existed, or hard-deleted meanwhile)."""


def _after_fork(ref: weakref.ref[StateStore]) -> None:
    store = ref()
    if store is not None:
        store.after_fork()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class SessionStates:
    def __init__(self, store: StateStore, flusher: ProgressFlusher, clock: RevisionClock) -> None:
        # Private: callers get what they need from methods here, so the rules (overlay of
        # unflushed progress, compare-and-set, revisions) cannot be bypassed.
        self._store = store
        self._flusher = flusher
        self._clock = clock
        # A forked child (gunicorn worker of a preloaded app) must not use the parent's
        # pooled connections: the store drops them in the child, whoever forks.
        ref = weakref.ref(store)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    def _read_own(self, session_id: str, read: Callable[[], T]) -> tuple[T, dict[str, Any] | None]:
        """A database read and this process's unflushed progress for the session, as one
        consistent view (read-your-writes).

        A flush that lands while the read is on its way leaves the overlay, and the read
        may have been answered before it committed: then neither holds the write, and a
        member seen "thinking" would flicker back to "queued".  The flusher counts such
        departures; a read that spans one is done again (rarely more than once).
        """
        for _ in range(READ_ATTEMPTS):
            changes = self._flusher.changes
            found = read()
            after, pending = self._flusher.peek_at(session_id)
            if after == changes:
                break
        return found, pending

    def create(self, row: SessionRow, state: dict[str, Any]) -> None:
        self._store.create_session(row, state, self._clock.next())

    def meta(self, session_id: str) -> SessionRow | None:
        return self._store.get_session(session_id)

    def load(self, session_id: str) -> StoredState | None:
        stored, pending = self._read_own(session_id, lambda: self._store.load(session_id))
        if stored is None:
            return None
        self._clock.observe(stored.revision)
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
        view, pending = self._read_own(
            session_id, lambda: self._store.read_view(session_id, small_keys, raw_keys)
        )
        if pending and set(pending) & set(raw_keys):
            return None
        if view is not None and pending:
            deep_merge(view.small, {k: v for k, v in pending.items() if k in small_keys})
        return view

    def hot(self, session_id: str) -> tuple[HotRow, dict[str, Any]] | None:
        """Metadata and hot keys (what /status needs), with unflushed progress overlaid."""
        found, pending = self._read_own(session_id, lambda: self._store.load_hot(session_id))
        if found is None:
            return None
        row, hot = found
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
        self._flusher.update_progress(session_id, patch, meta, run_id)

    # -- what the workflow and the API need besides documents --------------------------

    def list_sessions(
        self, user_id: str, limit: int, offset: int = 0, **filters: Any
    ) -> list[SessionRow]:
        """The user's live sessions, newest first (``StateStore.list_sessions``)."""
        return self._store.list_sessions(user_id, limit, offset, **filters)

    def running_sessions(self) -> list[str]:
        """Live sessions whose status says a run owns them (any worker, any host)."""
        return self._store.running_sessions()

    def mark_deleted(self, session_id: str, *, hard: bool) -> None:
        """Tombstone (``hard``: drop the state and the run checkpoints too); callers decide
        whether it may happen (``workflow.delete_session``)."""
        self._flusher.take(session_id)  # nothing pending may land after the delete
        self._store.mark_deleted(session_id, hard=hard)
        if hard:
            self._store.drop_members(session_id)

    def put_member(self, checkpoint: MemberCheckpoint) -> None:
        """A run member's answer, durable now: one small row, whatever the session's size."""
        self._store.put_member(checkpoint)

    def run_members(self, run_id: str) -> list[MemberCheckpoint]:
        return self._store.run_members(run_id)

    def drop_members(self, session_id: str, keep_run_id: str | None = None) -> int:
        return self._store.drop_members(session_id, keep_run_id)

    def hot_many(self, session_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored hot keys of these sessions, one statement for all (the lease keeper's
        look for cancel requests; unflushed progress, which never holds the run record, is
        not overlaid)."""
        return self._store.load_hot_many(session_ids) if session_ids else {}

    def renew_leases(self, leases: list[tuple[str, str, float]], **run: Any) -> set[str]:
        """Move the lease of each run (session, lease id, until in epoch s), in one
        transaction, written now, not coalesced; ``run`` adds fields to each run record.
        Returns the sessions whose lease is no longer theirs (taken over, finished)."""
        writes = [
            ProgressWrite(
                sid, {"run": {"lease_until": until, **run}}, self._clock.next(), {}, lease_id
            )
            for sid, lease_id, until in leases
        ]
        return set(self._store.write_progress(writes)) if writes else set()

    def renew_lease(self, session_id: str, lease_id: str, until: float, **run: Any) -> bool:
        """``renew_leases`` for one run: False when its lease is no longer the session's."""
        return session_id not in self.renew_leases([(session_id, lease_id, until)], **run)

    def take_pending(self, session_id: str) -> ProgressWrite | None:
        """Remove and return this process's unflushed progress of a session."""
        return self._flusher.take(session_id)

    def next_revision(self) -> int:
        return self._clock.next()

    # -- the process's plumbing, for health, metrics and shutdown -------------------------

    @property
    def backend(self) -> str:
        return self._store.backend

    def ping(self) -> None:
        """One round trip to the database; raises StoreUnavailable."""
        self._store.ping()

    @property
    def stats(self) -> FlusherStats:
        """The progress flusher's counters (health, metrics)."""
        return self._flusher.stats

    @property
    def pending_sessions(self) -> int:
        """Sessions with progress accepted here and not yet in the database."""
        return self._flusher.pending_sessions

    def start_background(self) -> None:
        self._flusher.start()

    def close(self) -> None:
        """Release pooled connections (gunicorn's master before forking)."""
        self._store.close()

    def after_fork(self) -> None:
        """Drop connections inherited from the parent process."""
        self._store.after_fork()

    def flush(self, timeout: float | None = None) -> bool:
        """Write pending progress now; True when it all landed."""
        return self._flusher.flush(timeout)

    def stop(self, timeout: float | None = 5.0) -> dict[str, ProgressWrite]:
        """Flush and stop the flusher; what could not be written (database down), to be
        kept for recovery.  Connections are released."""
        left: dict[str, ProgressWrite] = {}
        if not self._flusher.stop(timeout):
            left = self._flusher.drain()
        self._store.close()
        return left

    def update(self, session_id: str, mutate: Callable[[dict[str, Any]], T]) -> T:
        """Read, apply ``mutate`` (in place; may raise to abort), write if nobody else did.

        Retries on a lost compare-and-set.  Errors from ``mutate`` or the store leave this
        process's pending progress where it was.
        """
        entry = self._flusher.take(session_id, hold=True)
        try:
            for _ in range(MAX_CAS_ATTEMPTS):
                stored = self._store.load(session_id)
                if stored is None:
                    raise SessionGone(session_id)
                self._clock.observe(stored.revision)
                state = stored.state
                if entry is not None:
                    deep_merge(state, entry.patch)
                result = mutate(state)
                state["updated_at"] = now_iso()
                try:
                    self._store.write_state(
                        session_id,
                        state,
                        expected_revision=stored.revision,
                        new_revision=self._clock.next(),
                    )
                except RevisionConflict:
                    continue
                if entry is not None:
                    self._flusher.settle(session_id, entry, landed=True)
                return result
            raise RevisionConflict(f"{session_id}: too many concurrent writers")
        except BaseException:
            if entry is not None:
                self._flusher.settle(session_id, entry, landed=False)
            raise
