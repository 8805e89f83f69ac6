"""Write-behind of progress: updates coalesce in memory, one batched write per interval.

Modelled on sentry-python's batcher: the thread starts lazily once per process id (so it
works under gunicorn with and without ``--preload``), waits on an Event, swaps the pending
buffer out under the lock and writes it outside the lock.  A failed write puts the batch
back (newer patches win) and retries with backoff, so no accepted update is lost while the
process lives.

Updates are kept per session *and* per run: an external report (no run) and a background
run's progress accepted in the same interval are two entries, both written (in revision
order), each under its own rule (``ProgressWrite``).  A batch the database refuses for its
data is split until the entry at fault is alone: that one is logged, counted
(``stats.rejected``, shown by /api/health) and dropped; every other entry lands.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from council_app.revisions import RevisionClock
from council_app.store.base import (
    ProgressWrite,
    StateStore,
    StoreDataError,
    deep_merge,
)

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
REJECTED_IDS_KEPT = 20  # the last sessions whose entries were refused, for /api/health

Key = tuple[str, str | None]  # (session id, run id or None for reports from outside a run)


def _then(older: ProgressWrite, newer: ProgressWrite | None) -> ProgressWrite:
    """``older`` followed by ``newer``, as one write.  A newer run's progress replaces an
    older run's (that run is over); progress without a run merges with either and the
    run's id is kept."""
    if newer is None:
        return older
    if newer.run_id is not None and older.run_id is not None and newer.run_id != older.run_id:
        return newer
    return ProgressWrite(
        older.session_id,
        deep_merge(deep_merge({}, older.patch), newer.patch),
        max(older.revision, newer.revision),
        {**older.meta, **newer.meta},
        older.run_id if older.run_id is not None else newer.run_id,
    )


def _copy(entry: ProgressWrite) -> ProgressWrite:
    return ProgressWrite(
        entry.session_id,
        deep_merge({}, entry.patch),
        entry.revision,
        dict(entry.meta),
        entry.run_id,
    )


def _fold(entries: list[ProgressWrite]) -> ProgressWrite | None:
    """Entries of one session as one, oldest revision first."""
    folded: ProgressWrite | None = None
    for entry in sorted(entries, key=lambda e: e.revision):
        folded = _copy(entry) if folded is None else _then(folded, entry)
    return folded


@dataclass
class FlusherStats:
    updates_accepted: int = 0
    flushes: int = 0
    failed_flushes: int = 0
    rows_written: int = 0
    stale_rejected: int = 0
    rejected: int = 0  # entries the database refused for their data (dropped, logged)
    rejected_sessions: list[str] = field(default_factory=list)  # the last few, newest last
    last_flush_at: float | None = None  # epoch seconds of the last successful flush
    last_flush_duration_s: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


class ProgressFlusher:
    def __init__(
        self,
        store: StateStore,
        interval_s: float,
        clock: RevisionClock,
        on_flush: Callable[[int, float, bool], None] | None = None,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.clock = clock
        self.stats = FlusherStats()
        self._on_flush = on_flush  # (rows, seconds, ok) -> None, for metrics
        self._reset_for_process()

    def _reset_for_process(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()  # guards _pending and _inflight
        self._flush_lock = threading.Lock()  # one flush at a time
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Pending progress is kept as the store's own ``ProgressWrite`` (one shape for a
        # progress write everywhere: flusher, store, recovery file).
        self._pending: dict[Key, ProgressWrite] = {}
        self._inflight: dict[Key, ProgressWrite] = {}
        # In-flight keys an immediate write took over (``take``) while their flush ran.
        self._superseded: set[Key] = set()
        # What immediate writes took (``take(hold=True)``), still shown to reads until the
        # write is over (``settle``): a read in between must not lose sight of it.
        self._held: dict[str, list[ProgressWrite]] = {}
        # Bumped whenever entries leave the overlay (a flush landed, a held write
        # settled): a read whose database round trip spans a bump reads again (``peek_at``).
        self._changes = 0

    # -- producers ----------------------------------------------------------------------

    def update_progress(
        self,
        session_id: str,
        patch: dict[str, Any],
        meta: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        """Accept a deep-merge patch of hot keys; returns at memory speed."""
        self._ensure_thread()
        revision = self.clock.next()
        key = (session_id, run_id)
        with self._lock:
            if run_id is not None:
                # Another run's unflushed progress is over: this run replaced it.
                for other in [k for k in self._pending if k[0] == session_id]:
                    if other[1] is not None and other[1] != run_id:
                        del self._pending[other]
            entry = self._pending.get(key)
            if entry is None:
                self._pending[key] = ProgressWrite(
                    session_id, deep_merge({}, patch), revision, dict(meta or {}), run_id
                )
            else:
                deep_merge(entry.patch, patch)
                entry.revision = revision
                if meta:
                    entry.meta.update(meta)
            self.stats.updates_accepted += 1

    def _entries(self, session_id: str) -> list[ProgressWrite]:
        """In-flight (not superseded) and pending entries of a session; lock held."""
        found = [
            e for k, e in self._inflight.items() if k[0] == session_id and k not in self._superseded
        ]
        found += [e for k, e in self._pending.items() if k[0] == session_id]
        return found

    @property
    def changes(self) -> int:
        """How often entries have left the overlay so far (see ``peek_at``)."""
        return self._changes

    def peek(self, session_id: str) -> dict[str, Any] | None:
        """What this process accepted for a session and the database may not have yet."""
        return self.peek_at(session_id)[1]

    def peek_at(self, session_id: str) -> tuple[int, dict[str, Any] | None]:
        """``peek`` and the ``changes`` count it was taken at, read together.

        A reader notes ``changes``, reads the database, then peeks: an unchanged count
        means nothing left the overlay meanwhile, so every write of this process is either
        in what the database returned or in the overlay (read-your-writes).
        """
        with self._lock:
            entries = self._entries(session_id) + self._held.get(session_id, [])
            changes = self._changes
        if not entries:
            return changes, None
        merged: dict[str, Any] = {}
        for entry in sorted(entries, key=lambda e: e.revision):
            deep_merge(merged, entry.patch)
        return changes, merged

    def take(self, session_id: str, *, hold: bool = False) -> ProgressWrite | None:
        """Remove a session's unflushed progress so an immediate write can fold it in.

        In-flight copies are marked superseded: if their flush lands first, the immediate
        write reads it back; if it lands later, its older revision is rejected.  With
        ``hold`` reads keep seeing it until the caller says the write is over (``settle``).
        """
        with self._lock:
            entries: list[ProgressWrite] = []
            for key in [k for k in self._inflight if k[0] == session_id]:
                if key not in self._superseded:
                    self._superseded.add(key)
                    entries.append(_copy(self._inflight[key]))
            for key in [k for k in self._pending if k[0] == session_id]:
                entries.append(self._pending.pop(key))
            folded = _fold(entries)
            if hold and folded is not None:
                self._held.setdefault(session_id, []).append(folded)
        return folded

    def settle(self, session_id: str, entry: ProgressWrite, *, landed: bool) -> None:
        """The immediate write that took (and held) ``entry`` is over: stored with it
        (``landed``), or failed, and the entry goes back to be flushed."""
        with self._lock:
            held = self._held.get(session_id, [])
            if any(e is entry for e in held):
                held[:] = [e for e in held if e is not entry]
                if not held:
                    del self._held[session_id]
                self._changes += 1
            if not landed:
                self._requeue((session_id, entry.run_id), entry)
        if not landed:
            self._ensure_thread()

    def _requeue(self, key: Key, entry: ProgressWrite) -> None:
        """Put an unwritten entry back before anything accepted since; lock held."""
        self._pending[key] = _then(entry, self._pending.get(key))

    @property
    def pending_sessions(self) -> int:
        with self._lock:
            sessions = {k[0] for k in self._pending}
            sessions.update(k[0] for k in self._inflight if k not in self._superseded)
            return len(sessions)

    def pending_items(self) -> dict[str, ProgressWrite]:
        """Everything unflushed, one entry per session (for the file fallback at exit)."""
        with self._lock:
            ids = {k[0] for k in self._pending}
            ids.update(k[0] for k in self._inflight if k not in self._superseded)
            grouped = {sid: self._entries(sid) for sid in ids}
        out: dict[str, ProgressWrite] = {}
        for sid, entries in grouped.items():
            folded = _fold(entries)
            if folded is not None:
                out[sid] = folded
        return out

    def drain(self) -> dict[str, ProgressWrite]:
        """Remove and return everything unflushed, one entry per session: what the exit
        path keeps on disk instead (a second shutdown then has nothing left to retry)."""
        items = self.pending_items()
        with self._lock:
            self._pending = {}
            # If an in-flight write still lands, the file loses to it.
            self._superseded.update(self._inflight)
        return items

    # -- the thread ---------------------------------------------------------------------

    def start(self) -> None:
        """Start this process's flusher thread now (it also starts on first use)."""
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        if self._pid != os.getpid():
            # Forked: the parent's thread and locks did not come along, and the parent
            # flushes its own pending updates.
            self._reset_for_process()
            self.store.after_fork()
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._stopping.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="council-progress-flusher", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            failures = self.stats.consecutive_failures
            delay = min(self.interval_s * (2**failures), MAX_BACKOFF_S) if failures else None
            self._wake.wait(delay if delay is not None else self.interval_s)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self.flush_once()
            except Exception:  # never let the thread die
                log.exception("Progress flusher iteration failed")

    def flush_once(self, lock_timeout: float | None = None) -> bool:
        """Write everything pending in batched statements; True when it all landed.

        ``lock_timeout`` bounds the wait for a flush already running in another thread
        (False when it does not finish in time: what it holds is still in ``_inflight``).
        """
        if not self._flush_lock.acquire(timeout=-1 if lock_timeout is None else lock_timeout):
            return False
        try:
            return self._flush_locked()
        finally:
            self._flush_lock.release()

    def _flush_locked(self) -> bool:
        with self._lock:
            if not self._pending:
                return True
            batch, self._pending = self._pending, {}
            self._inflight = batch
            self._superseded = set()
        started = time.perf_counter()
        landed, stale, unwritten, error = self._write(list(batch.items()))
        elapsed = time.perf_counter() - started
        with self._lock:
            for key in unwritten:
                if key not in self._superseded:
                    self._requeue(key, batch[key])
            superseded, self._superseded = self._superseded, set()
            self._inflight = {}
            self._changes += 1
        rejected = [sid for sid, run in stale if (sid, run) not in superseded]
        if rejected:
            self.stats.stale_rejected += len(rejected)
            log.info(
                "Rejected %d stale progress writes (a newer state was stored): %s",
                len(rejected),
                ", ".join(rejected[:10]),
            )
        self.stats.rows_written += landed
        if unwritten:
            self.stats.failed_flushes += 1
            self.stats.consecutive_failures += 1
            self.stats.last_error = str(error)
            log.warning(
                "Warning: batched update failed for %d sessions: %s (retrying, attempt %d)",
                len({k[0] for k in unwritten}),
                error,
                self.stats.consecutive_failures,
            )
            if self._on_flush:
                self._on_flush(landed, elapsed, False)
            return False
        self.stats.flushes += 1
        self.stats.consecutive_failures = 0
        self.stats.last_error = None
        self.stats.last_flush_at = time.time()
        self.stats.last_flush_duration_s = elapsed
        if self._on_flush:
            self._on_flush(landed, elapsed, True)
        return True

    def _write(
        self, items: list[tuple[Key, ProgressWrite]]
    ) -> tuple[int, list[Key], list[Key], Exception | None]:
        """Write ``items``; returns (rows landed, stale keys, keys still to write, error).

        A session with two entries (a run's and an external report) needs two rounds: one
        statement updates each row once.  The older revision goes first, so neither is
        refused as stale because of the other.
        """
        rounds: list[list[tuple[Key, ProgressWrite]]] = []
        seen: dict[str, int] = {}
        for key, entry in sorted(items, key=lambda kv: kv[1].revision):
            n = seen.get(key[0], 0)
            seen[key[0]] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append((key, entry))
        landed: list[Key] = []
        stale: list[Key] = []
        rejected: list[Key] = []
        try:
            for round_ in rounds:
                self._write_isolating(round_, landed, stale, rejected)
        except Exception as e:  # unavailable, or not the data's fault: retry what is left
            done = {*landed, *stale, *rejected}
            return len(landed), stale, [k for k, _ in items if k not in done], e
        return len(landed), stale, [], None

    def _write_isolating(
        self,
        items: list[tuple[Key, ProgressWrite]],
        landed: list[Key],
        stale: list[Key],
        rejected: list[Key],
    ) -> None:
        """One statement for ``items``; when the database refuses their data, halves until
        the entry at fault is alone, and rejects that one.  Outcomes are appended as they
        happen, so an error part-way leaves exactly the unwritten keys for a retry."""
        writes = [e for _, e in items]
        try:
            stale_ids = set(self.store.write_progress(writes))
        except StoreDataError as e:
            if len(items) == 1:
                self._reject(items[0][0], e)
                rejected.append(items[0][0])
                return
            middle = len(items) // 2
            self._write_isolating(items[:middle], landed, stale, rejected)
            self._write_isolating(items[middle:], landed, stale, rejected)
            return
        for key, _ in items:
            (stale if key[0] in stale_ids else landed).append(key)

    def _reject(self, key: Key, error: Exception) -> None:
        self.stats.rejected += 1
        self.stats.rejected_sessions = [*self.stats.rejected_sessions, key[0]][-REJECTED_IDS_KEPT:]
        log.error(
            "Dropped the unflushed progress of session %s%s: the database refused it (%s)",
            key[0],
            f" (run {key[1]})" if key[1] else "",
            error,
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Write what is pending now, from the calling thread; True when it landed.

        On a database error it retries until ``timeout`` runs out (once when None); the
        wait for a flush running in another thread counts against ``timeout`` too.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self.flush_once(lock_timeout=remaining):
                return True
            remaining = 0.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(0.25, remaining))  # back off before retrying

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Flush what is pending, then stop the thread.  True when everything was written."""
        ok = self.flush(timeout)
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        return ok
