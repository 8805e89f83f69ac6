"""Write-behind of progress: updates coalesce in memory, one batched write per interval.

Modelled on sentry-python's batcher: the thread starts lazily once per process id (so it
works under gunicorn with and without ``--preload``), waits on an Event, swaps the pending
buffer out under the lock and writes it outside the lock.  A failed write puts the batch
back (newer patches win) and retries with backoff, so no accepted update is lost while the
process lives.
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
from council_app.store.base import ProgressWrite, StateStore, StoreError, deep_merge

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0


@dataclass
class PendingProgress:
    """Coalesced patches of one session not yet in the database."""

    patch: dict[str, Any]
    revision: int
    meta: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    superseded: bool = False  # taken by an immediate write while its flush was in flight

    def then(self, newer: PendingProgress | None) -> PendingProgress:
        """This entry followed by a newer one, as one entry.  A newer run's progress
        replaces an older run's: that run is over."""
        if newer is None:
            return self
        if newer.run_id != self.run_id:
            return newer
        patch = deep_merge(deep_merge({}, self.patch), newer.patch)
        return PendingProgress(
            patch, max(self.revision, newer.revision), {**self.meta, **newer.meta}, self.run_id
        )


@dataclass
class FlusherStats:
    updates_accepted: int = 0
    flushes: int = 0
    failed_flushes: int = 0
    rows_written: int = 0
    stale_rejected: int = 0
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
        self._pending: dict[str, PendingProgress] = {}
        self._inflight: dict[str, PendingProgress] = {}

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
        with self._lock:
            entry = self._pending.get(session_id)
            if entry is None or entry.run_id != run_id:
                self._pending[session_id] = PendingProgress(
                    deep_merge({}, patch), revision, dict(meta or {}), run_id
                )
            else:
                deep_merge(entry.patch, patch)
                entry.revision = revision
                if meta:
                    entry.meta.update(meta)
            self.stats.updates_accepted += 1

    def peek(self, session_id: str) -> dict[str, Any] | None:
        """What this process accepted for a session and the database may not have yet."""
        with self._lock:
            inflight = self._inflight.get(session_id)
            pending = self._pending.get(session_id)
            if inflight is None and pending is None:
                return None
            merged: dict[str, Any] = {}
            if inflight is not None and not inflight.superseded:
                deep_merge(merged, inflight.patch)
            if pending is not None:
                deep_merge(merged, pending.patch)
            return merged

    def take(self, session_id: str) -> PendingProgress | None:
        """Remove a session's unflushed progress so an immediate write can fold it in.

        An in-flight copy is marked superseded: if its flush lands first, the immediate
        write reads it back; if it lands later, its older revision is rejected.
        """
        with self._lock:
            inflight = self._inflight.get(session_id)
            pending = self._pending.pop(session_id, None)
            if inflight is not None and not inflight.superseded:
                inflight.superseded = True
                return PendingProgress(
                    deep_merge({}, inflight.patch),
                    inflight.revision,
                    dict(inflight.meta),
                    inflight.run_id,
                ).then(pending)
            return pending

    def restore(self, session_id: str, entry: PendingProgress) -> None:
        """Give back what ``take`` returned when the immediate write failed."""
        with self._lock:
            self._pending[session_id] = entry.then(self._pending.get(session_id))
        self._ensure_thread()

    @property
    def pending_sessions(self) -> int:
        with self._lock:
            return len(self._pending) + sum(
                1 for k, v in self._inflight.items() if not v.superseded and k not in self._pending
            )

    def pending_items(self) -> dict[str, PendingProgress]:
        """A copy of everything unflushed (for the last-resort file fallback at exit)."""
        with self._lock:
            out = {k: v for k, v in self._inflight.items() if not v.superseded}
            for k, v in self._pending.items():
                out[k] = out[k].then(v) if k in out else v
            return out

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

    def flush_once(self) -> bool:
        """Write everything pending in one batched statement; True when it all landed."""
        with self._flush_lock:
            with self._lock:
                if not self._pending:
                    return True
                batch, self._pending = self._pending, {}
                self._inflight = batch
            writes = [ProgressWrite(sid, e.patch, e.revision, e.meta) for sid, e in batch.items()]
            started = time.perf_counter()
            try:
                stale = self.store.write_progress(writes)
            except StoreError as e:
                elapsed = time.perf_counter() - started
                with self._lock:
                    for sid, entry in batch.items():
                        if not entry.superseded:
                            self._pending[sid] = entry.then(self._pending.get(sid))
                    self._inflight = {}
                self.stats.failed_flushes += 1
                self.stats.consecutive_failures += 1
                self.stats.last_error = str(e)
                log.warning(
                    "Warning: batched update failed for %d sessions: %s (retrying, attempt %d)",
                    len(batch),
                    e,
                    self.stats.consecutive_failures,
                )
                if self._on_flush:
                    self._on_flush(len(batch), elapsed, False)
                return False
            elapsed = time.perf_counter() - started
            with self._lock:
                self._inflight = {}
            rejected = [sid for sid in stale if not batch[sid].superseded]
            if rejected:
                self.stats.stale_rejected += len(rejected)
                log.info(
                    "Rejected %d stale progress writes (a newer state was stored): %s",
                    len(rejected),
                    ", ".join(rejected[:10]),
                )
            self.stats.flushes += 1
            self.stats.rows_written += len(batch) - len(stale)
            self.stats.consecutive_failures = 0
            self.stats.last_error = None
            self.stats.last_flush_at = time.time()
            self.stats.last_flush_duration_s = elapsed
            if self._on_flush:
                self._on_flush(len(batch) - len(stale), elapsed, True)
            return True

    def flush(self, timeout: float | None = None) -> bool:
        """Write what is pending now, from the calling thread; True when it landed.

        On a database error it retries until ``timeout`` runs out (once when None).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.flush_once():
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
