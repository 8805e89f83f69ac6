"""Start-up that does not need the database: a worker boots during an outage, answers 503,
and finishes start-up (schema, recovery replay) as soon as the database answers.

The schema step itself is the store's (``create_schema``: Alembic, under its own lock).
The recovery replay runs once, in one process, under an exclusive lock on a file in
``SESSIONS_DIR`` (shared by every host: README, "Several hosts"): the first
process to get it replays and removes the files, the others skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from council_app import recovery
from council_app.settings import ConfigError
from council_app.startup import EXIT_BOOT_ERROR
from council_app.store.base import StateStore, StoreError, StoreUnavailable
from council_app.store.schema_versions import SchemaNotUsable

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
LOCK_FILE = ".recovery-replay.lock"  # in SESSIONS_DIR, beside _recovery/


class Readiness:
    """Whether this process finished start-up; retries it in the background until it has."""

    def __init__(
        self,
        create_schema: Callable[[], None],
        replay: Callable[[], int],
        sessions_dir: Path,
    ) -> None:
        # The two steps, not the store: services.py binds them to it (issue 14).
        self._create_schema = create_schema
        self._replay = replay  # replay_once on the store; returns sessions recovered
        self._sessions_dir = Path(sessions_dir)
        check_sessions_dir(self._sessions_dir)
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.replayed = 0  # recovery files this process replayed

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def try_now(self) -> bool:
        """One attempt (never blocks behind another); True once start-up is complete."""
        if self._ready.is_set():
            return True
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._ready.is_set():
                return True
            self._create_schema()
            self.replayed += self._replay()
            self._ready.set()
            self.last_error = None
            log.info("Start-up complete: schema checked, recovery files replayed")
            return True
        except StoreUnavailable as e:
            if self.last_error is None:
                log.warning("Database unavailable at start-up (serving 503 meanwhile): %s", e)
            self.last_error = str(e)
            return False
        finally:
            self._lock.release()

    def start(self) -> None:
        """Keep trying in the background (with backoff) until start-up completes."""
        if self._ready.is_set() or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._retry, name="startup-retry", daemon=True)
        self._thread.start()

    def _retry(self) -> None:
        delay = RETRY_MIN_S
        while not self._ready.is_set() and not self._stopping.wait(delay):
            try:
                if self.try_now():
                    return
            except StoreError as e:  # not an outage: say so, keep trying (an operator fixes it)
                log.error("Start-up failed: %s", e)
                self.last_error = str(e)
            except SchemaNotUsable as e:
                # Reachable at last, but not a schema this code can use (the old server's,
                # or a newer revision): stop as start-up would have (gunicorn halts on 3).
                log.critical("Database not usable: %s", e)
                os._exit(EXIT_BOOT_ERROR)
            delay = min(delay * 2, RETRY_MAX_S)

    def stop(self) -> None:
        self._stopping.set()


def check_sessions_dir(path: Path) -> None:
    """SESSIONS_DIR must be a writable directory: every run reads the uploads' text there and
    writes the LLM call log (with several hosts: the same shared directory on all of them).
    Checked at start, so a wrong mount fails with one line instead of failing runs later."""
    probe = path / f".write-check-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"SESSIONS_DIR={path} is not a writable directory: {e}") from e


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def replay_once(store: StateStore, sessions_dir: Path) -> int:
    """Replay the recovery files unless another process is replaying them right now."""
    folder = Path(sessions_dir) / recovery.RECOVERY_DIR
    if not folder.is_dir() or not any(folder.glob("*.json")):
        return 0
    with _exclusive(Path(sessions_dir) / LOCK_FILE) as mine:
        if not mine:
            log.info("Another process is replaying the recovery files")
            return 0
        return recovery.replay(store, sessions_dir)
