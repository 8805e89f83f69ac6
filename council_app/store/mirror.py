"""The state-file mirror: every step write on PostgreSQL copied to its ``state.json``.

The runbook's rollback is "unset DATABASE_URL and restart": the embedded backend then
serves ``sessions/<id>/state.json`` files (``legacy_fallback.py`` picks up the ones it has
no row for).  So while PostgreSQL is in charge, ``StateFileMirror`` keeps those files
current with every *step* write (``create_session``, ``write_state``, deletion), not with
progress flushes (``write_progress`` passes straight through: they are the hot path, and
the next step write carries their keys anyway).

The request thread only serialises the document (orjson, indented like the old server's
files) and hands the bytes over; a daemon thread per process (started lazily, again after
a fork, at the lowest CPU priority) writes them atomically (temp file, rename; fsynced in
groups, every ``SYNC_INTERVAL_S`` and at ``flush``).  Writes are coalesced per session: only the
newest pending version is written.  A failed write is logged and
counted, never raised (the database write it copies has succeeded), and retried with
backoff for about a minute (a tombstone needs the database; a disk may fill up).  ``flush(timeout)``
waits for the queue to drain (called by ``close`` at shutdown).

A soft-deleted session's file says ``deleted: true`` (a rollback keeps it deleted); a hard
delete removes the file.  A document without ``user_id`` (migrated from an old file) gets
its owner from the metadata row, so the rollback lists it for the right person.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from council_app.store import legacy_files
from council_app.store.base import SessionRow, StateStore
from council_app.store.decorator import StoreDecorator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    """What to do to one session's file: write ``payload`` (owner maybe missing), or mark it
    deleted (``tombstone``), or remove it (``remove``)."""

    payload: bytes | None = None
    has_owner: bool = True
    tombstone: bool = False
    remove: bool = False
    attempts: int = 0  # failed attempts so far


# Seconds before each retry of a failed write (database down for a tombstone, disk full):
# about a minute in all, then the failure is logged as an error and the write dropped.
RETRY_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

# Files are written without an fsync each and synced together at most this often (and at
# every flush(), so at shutdown): an fsync per file competed with PostgreSQL's own commit
# for the disk and made a small step write 1.3x slower (docs/BENCHMARKS.md).  A crash of
# the machine (not of the process) can lose at most this much of the mirror's copies;
# the database holds everything, and `migrate_state.py --export` rewrites them all.
SYNC_INTERVAL_S = 5.0

_SYNC_DUE = ""  # _next_ready's answer when files wait for their group sync


class StateFileMirror(StoreDecorator):
    def __init__(
        self,
        inner: StateStore,
        sessions_dir: Path,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
        sync_interval_s: float = SYNC_INTERVAL_S,
    ) -> None:
        super().__init__(inner)
        self.sessions_dir = Path(sessions_dir)
        self.retry_delays_s = retry_delays_s
        self.sync_interval_s = sync_interval_s
        self.written = 0
        self.failures = 0
        self._owners: dict[str, str] = {}
        self._reset_for_process()
        ref = weakref.ref(self)

        def in_child() -> None:
            mirror = ref()
            if mirror is not None:
                mirror._reset_for_process()

        os.register_at_fork(after_in_child=in_child)

    def _reset_for_process(self) -> None:
        """A fresh queue, lock and (lazy) thread: a forked child inherits none of the
        parent's, and the parent's pending writes stay the parent's to do."""
        self._cond = threading.Condition()
        self._pending: dict[str, _Job] = {}
        self._not_before: dict[str, float] = {}  # retries wait until then (monotonic)
        self._busy = 0
        self._in_flight: str | None = None  # the session the thread is writing now
        self._unsynced: set[Path] = set()  # written, not yet fsynced
        self._sync_lock = threading.Lock()
        self._last_sync = time.monotonic()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stopping = False

    # -- the writes it copies -------------------------------------------------------------

    def create_session(self, row: SessionRow, state: dict[str, Any], revision: int) -> None:
        self.inner.create_session(row, state, revision)
        self._owners[row.session_id] = row.user_id
        self._submit(row.session_id, self._write_job(state))

    def write_state(
        self, session_id: str, state: dict[str, Any], *, expected_revision: int, new_revision: int
    ) -> None:
        self.inner.write_state(
            session_id, state, expected_revision=expected_revision, new_revision=new_revision
        )
        self._submit(session_id, self._write_job(state))

    def mark_deleted(self, session_id: str, *, hard: bool) -> None:
        self.inner.mark_deleted(session_id, hard=hard)
        if hard:
            # The caller removes the session's folder next: no queued or in-flight copy of
            # an older version may land after that and bring the folder back.
            self._forget(session_id)
        self._submit(session_id, _Job(remove=True) if hard else _Job(tombstone=True))

    def _forget(self, session_id: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._pending.pop(session_id, None)
            self._not_before.pop(session_id, None)
            while self._in_flight == session_id and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())

    @staticmethod
    def _write_job(state: dict[str, Any]) -> _Job:
        owner = state.get("user_id")
        return _Job(
            legacy_files.json_bytes(state), has_owner=isinstance(owner, str) and bool(owner)
        )

    # -- queue and thread -----------------------------------------------------------------

    def _submit(self, session_id: str, job: _Job) -> None:
        try:
            with self._cond:
                self._pending[session_id] = job  # coalesced: the newest version wins
                self._not_before.pop(session_id, None)
                self._cond.notify()
            self._ensure_thread()
        except Exception:  # never fail the request whose database write succeeded
            log.exception("State-file mirror could not queue %s", session_id)

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():
            self._reset_for_process()
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="state-file-mirror", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                session_id = self._next_ready()
                if session_id is None:
                    return
                if session_id == _SYNC_DUE:
                    job = None
                else:
                    job = self._pending.pop(session_id)
                    self._not_before.pop(session_id, None)
                    self._busy += 1
                    self._in_flight = session_id
            if job is None:
                self._sync_files()
                continue
            try:
                self._apply(session_id, job)
                self.written += 1
            except Exception as e:
                self.failures += 1
                self._retry_later(session_id, job, e)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._in_flight = None
                    self._cond.notify_all()
            if time.monotonic() - self._last_sync >= self.sync_interval_s:
                self._sync_files()

    def _next_ready(self) -> str | None:
        """The next session whose job may run now, waiting for one; ``_SYNC_DUE`` when
        written files wait for their group sync and nothing else is queued; None: stop."""
        while True:
            if not self._pending:
                if self._stopping:
                    return None
                if self._unsynced:
                    due = self._last_sync + self.sync_interval_s - time.monotonic()
                    if due <= 0:
                        return _SYNC_DUE
                    self._cond.wait(due)
                else:
                    self._cond.wait()
                continue
            now = time.monotonic()
            for sid in self._pending:
                if self._not_before.get(sid, 0.0) <= now:
                    return sid
            if self._stopping:
                return None  # only retries are left; close() has waited for them
            self._cond.wait(min(self._not_before[sid] for sid in self._pending) - now)

    def _sync_files(self) -> None:
        """fsync every file written since the last sync, then their folders (one group)."""
        with self._sync_lock:
            files, self._unsynced = self._unsynced, set()
            self._last_sync = time.monotonic()
            for path in sorted(files):
                _fsync(path)
            for folder in sorted({path.parent for path in files}):
                _fsync(folder)

    def _retry_later(self, session_id: str, job: _Job, error: Exception) -> None:
        if job.attempts >= len(self.retry_delays_s):
            log.error(
                "State-file mirror: %s not written after %d attempts, given up (%s)",
                session_id,
                job.attempts + 1,
                error,
            )
            return
        delay = self.retry_delays_s[job.attempts]
        log.warning(
            "State-file mirror: %s not written (%s); retrying in %.1f s", session_id, error, delay
        )
        with self._cond:
            if session_id not in self._pending:  # a newer version replaces the retry
                self._pending[session_id] = dataclasses.replace(job, attempts=job.attempts + 1)
                self._not_before[session_id] = time.monotonic() + delay

    def _apply(self, session_id: str, job: _Job) -> None:
        path = legacy_files.state_path(self.sessions_dir, session_id)
        if job.remove:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            # A rollback's embedded backend may still hold this session's pre-move row: the
            # record tells it the session is gone.
            legacy_files.record_hard_delete(self.sessions_dir, session_id, datetime.now(UTC))
            return
        if job.tombstone:
            stored = self.inner.load(session_id)
            if stored is None:
                return
            state = stored.state
            state["deleted"] = True
            # Dated now: the embedded backend takes a file over its row only when newer,
            # and a session that was in SQLite before the move must come back deleted.
            state["updated_at"] = datetime.now(UTC).isoformat()
            payload = legacy_files.json_bytes(self._with_owner(session_id, state))
        else:
            assert job.payload is not None
            payload = job.payload
            if not job.has_owner:
                state = orjson.loads(payload)
                payload = legacy_files.json_bytes(self._with_owner(session_id, state))
        legacy_files.write_bytes_atomic(path, payload, sync=False)
        self._unsynced.add(path)

    def _with_owner(self, session_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """The document with ``user_id``: the rollback lists a session for this owner."""
        owner = state.get("user_id")
        if isinstance(owner, str) and owner:
            return state
        known = self._owners.get(session_id)
        if known is None:
            row = self.inner.get_session(session_id)
            if row is None:
                return state
            known = self._owners[session_id] = row.user_id
        return {**state, "user_id": known}

    # -- shutdown -------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued write of this process is on disk; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                if self._thread is None or not self._thread.is_alive():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            drained = not self._pending and not self._busy
        self._sync_files()
        return drained

    def close(self) -> None:
        if self._pid == os.getpid() and not self.flush(10.0):
            log.warning("State-file mirror: %d write(s) not done at shutdown", len(self._pending))
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.inner.close()


def _fsync(path: Path) -> None:
    """Best effort: a file or folder removed since (a hard delete) has nothing to sync."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        log.warning("State-file mirror: fsync of %s failed (%s)", path, e)
    finally:
        os.close(fd)


def _lower_priority() -> None:
    """Give this thread the lowest CPU priority (Linux: niceness is per thread): a copy
    for a rollback must not delay the requests and runs it shares the machine with."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
