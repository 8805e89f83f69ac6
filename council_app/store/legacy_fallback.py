"""Sessions that exist only as ``sessions/<id>/state.json``, served through any backend.

Files get there three ways: an old deployment not migrated yet, the state-file mirror of a
PostgreSQL deployment that was rolled back (``store/mirror.py``), or the old server
itself.  ``LegacyFileFallback`` wraps a backend and, for a session the backend lacks,
reads the file: metadata (owner from the file's ``user_id``, else ``Settings.legacy_owner``),
the document (revision 0), a place in its owner's listing.  The first write adopts the
session into the backend.  It is one wrapper so that it can be dropped from
``build_store`` once migration is done; the backends know nothing about it.

Cost (listings must not scan the sessions folder per request): a listing filters an
in-memory index of file-only sessions.  The index is refreshed at most every
``RESCAN_AFTER_S`` per process: the folder is listed again only if its mtime changed (a
session folder was added or removed), the backend is asked once (one query per 1000 ids)
which of the new ids it holds, and an id it holds is never looked at again; a file is
parsed only the first time and when its mtime changed.  So with the mirror on PostgreSQL
(a file for every session) no file is read, and after a rollback each file is read once per
process.  A request for one id never scans: it reads that one file.

On the embedded backend (``reconcile=True``) start-up also lays files that are newer than
their rows over those rows: after a rollback, a session that existed in SQLite before the
move to PostgreSQL has its later PostgreSQL steps in the mirrored file, not in SQLite.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from council_app.session_ids import is_valid_session_id
from council_app.store import legacy_files
from council_app.store.base import (
    HotRow,
    RevisionConflict,
    SessionRow,
    StateStore,
    StoredState,
    StoreError,
    StoreUnavailable,
    hot_part,
)
from council_app.store.decorator import StoreDecorator

log = logging.getLogger(__name__)

# A file whose mtime is within this of its row's updated_at was written with the row (only
# a cost filter: whether the file is newer is decided by its own updated_at).
_SAME_WRITE = timedelta(milliseconds=100)


class LegacyFileFallback(StoreDecorator):
    RESCAN_AFTER_S = 5.0

    def __init__(
        self,
        inner: StateStore,
        sessions_dir: Path,
        default_owner: str,
        *,
        reconcile: bool = False,
    ) -> None:
        super().__init__(inner)
        self.sessions_dir = Path(sessions_dir)
        self.default_owner = default_owner
        self.reconcile = reconcile
        self._lock = threading.Lock()
        self._ids: list[str] = []  # folders holding a state.json, newest first
        self._dir_mtime: float | None = None
        self._refreshed_at: float | None = None
        self._rows: dict[str, tuple[float, SessionRow | None]] = {}  # file-only: (mtime, row)
        self._in_backend: set[str] = set()

    # -- start-up -------------------------------------------------------------------------

    def create_schema(self, *args: Any, **kwargs: Any) -> None:
        self.inner.create_schema(*args, **kwargs)
        if self.reconcile:
            self.adopt_newer_files()
            self.apply_hard_deletes()

    def apply_hard_deletes(self) -> int:
        """Hard-delete rows of sessions the state-file mirror recorded as hard-deleted after
        the row's last write (a session that was here before a move to PostgreSQL and was
        deleted there); return how many."""
        applied = 0
        for sid, when in legacy_files.hard_deletes(self.sessions_dir).items():
            row = self.inner.get_session(sid)
            if row is None or row.updated_at >= when:
                continue
            self.inner.mark_deleted(sid, hard=True)
            applied += 1
        if applied:
            log.warning("Hard-deleted %d session(s) the state-file mirror recorded", applied)
        return applied

    def adopt_newer_files(self) -> int:
        """Lay every ``state.json`` newer than its backend row over that row; return how many.

        A file written by this backend is never newer than its row (the row's
        ``updated_at`` is taken after the document's), so only files written elsewhere (the
        mirror, the old server) qualify.  Safe with several workers: compare-and-set.
        """
        with self._lock:
            ids = list(self._scan(force=True))
        if not ids:
            return 0
        written = self.inner.last_written(ids)
        adopted = 0
        for sid, row_updated in written.items():
            try:
                mtime = os.stat(legacy_files.state_path(self.sessions_dir, sid)).st_mtime
            except OSError:
                continue
            if mtime <= (row_updated + _SAME_WRITE).timestamp():
                continue
            state = legacy_files.read_state(self.sessions_dir, sid)
            doc_updated = legacy_files.parse_timestamp((state or {}).get("updated_at"))
            if state is None or doc_updated is None or doc_updated <= row_updated:
                continue
            try:
                self._lay_over(sid, state)
                adopted += 1
            except RevisionConflict:
                continue  # another worker did it
        if adopted:
            log.warning(
                "Took %d session(s) from state.json files newer than the database rows "
                "(written by the state-file mirror or the old server)",
                adopted,
            )
        return adopted

    def _lay_over(self, sid: str, state: dict[str, Any]) -> None:
        stored = self.inner.load(sid)
        if stored is None:
            return
        revision = max(stored.revision + 1, time.time_ns() // 1000)
        self.inner.write_state(sid, state, expected_revision=stored.revision, new_revision=revision)
        if state.get("deleted") is True:
            self.inner.mark_deleted(sid, hard=False)

    # -- reads ----------------------------------------------------------------------------

    def get_session(self, session_id: str) -> SessionRow | None:
        row = self.inner.get_session(session_id)
        if row is not None:
            return row
        state = legacy_files.read_state(self.sessions_dir, session_id)
        return None if state is None else self._file_row(session_id, state)

    def load(self, session_id: str) -> StoredState | None:
        stored = self.inner.load(session_id)
        if stored is not None:
            return stored
        row = self.inner.get_session(session_id)
        if row is not None and row.deleted_at is not None:
            return None  # hard-deleted here: a file left behind (a mirror copy) is not served
        state = legacy_files.read_state(self.sessions_dir, session_id)
        return None if state is None else StoredState(state, 0)

    def load_hot(self, session_id: str) -> tuple[HotRow, dict[str, Any]] | None:
        found = self.inner.load_hot(session_id)
        if found is not None:
            return found
        state = legacy_files.read_state(self.sessions_dir, session_id)
        if state is None:
            return None
        return HotRow.of(self._file_row(session_id, state)), hot_part(state)

    def list_sessions(
        self, user_id: str, limit: int, offset: int = 0, **filters: Any
    ) -> list[SessionRow]:
        """The backend's rows merged with the user's file-only sessions, newest first.

        ``filters`` (a keyset cursor ``after``, a ``query`` on the question) go to the
        backend and are applied alike to file rows.
        """
        rows = self.inner.list_sessions(user_id, offset + limit, 0, **filters)
        extra = self._file_rows_for(user_id, filters)
        if not extra:
            return rows[offset : offset + limit]
        listed = {r.session_id for r in rows}
        extra = [r for r in extra if r.session_id not in listed]
        merged = sorted(rows + extra, key=lambda r: (r.created_at, r.session_id), reverse=True)
        return merged[offset : offset + limit]

    # -- writes ---------------------------------------------------------------------------

    def create_session(self, row: SessionRow, state: dict[str, Any], revision: int) -> None:
        self.inner.create_session(row, state, revision)
        self._forget(row.session_id)

    def write_state(
        self, session_id: str, state: dict[str, Any], *, expected_revision: int, new_revision: int
    ) -> None:
        """Revision 0 is a session read from its file: the first write adopts it."""
        if expected_revision == 0 and self.inner.get_session(session_id) is None:
            file_state = legacy_files.read_state(self.sessions_dir, session_id)
            row = self._file_row(session_id, file_state if file_state is not None else state)
            self._adopt(row, state, new_revision)
            return
        self.inner.write_state(
            session_id, state, expected_revision=expected_revision, new_revision=new_revision
        )

    def mark_deleted(self, session_id: str, *, hard: bool) -> None:
        """A file-only session is adopted first, so that its tombstone has a row (410)."""
        if self.inner.get_session(session_id) is None:
            state = legacy_files.read_state(self.sessions_dir, session_id)
            if state is not None:
                # Adopted meanwhile by another process: delete that.
                with contextlib.suppress(RevisionConflict):
                    self._adopt(self._file_row(session_id, state), state, 1)
        self.inner.mark_deleted(session_id, hard=hard)
        self._forget(session_id)

    def _adopt(self, row: SessionRow, state: dict[str, Any], revision: int) -> None:
        """Insert a file-only session into the backend; losing the race is a conflict."""
        row = replace(row, deleted_at=None)
        try:
            self.inner.create_session(row, state, revision)
        except StoreUnavailable:
            raise
        except StoreError as e:
            if self.inner.get_session(row.session_id) is not None:
                raise RevisionConflict(row.session_id) from e
            raise
        self._forget(row.session_id)

    # -- the file index -------------------------------------------------------------------

    def _file_row(self, session_id: str, state: dict[str, Any]) -> SessionRow:
        return legacy_files.session_row(session_id, state, self.default_owner)

    def _scan(self, force: bool = False) -> list[str]:
        """Ids of session folders holding a state.json: listed again only when the folder's
        mtime changed (a session folder was added or removed)."""
        try:
            mtime = self.sessions_dir.stat().st_mtime
        except FileNotFoundError:
            return []
        if force or mtime != self._dir_mtime:
            with os.scandir(self.sessions_dir) as entries:
                ids = [
                    e.name
                    for e in entries
                    if is_valid_session_id(e.name)
                    and (self.sessions_dir / e.name / legacy_files.STATE_FILE).is_file()
                ]
            self._ids = sorted(ids, reverse=True)
            self._dir_mtime = mtime
        return self._ids

    def _file_rows(self) -> list[SessionRow]:
        """Rows of the sessions that exist only as files, refreshed at most every
        RESCAN_AFTER_S: new folders, ids the backend holds now, files changed since read."""
        with self._lock:
            if self._refreshed_at is None or (
                time.monotonic() - self._refreshed_at >= self.RESCAN_AFTER_S
            ):
                unknown = [i for i in self._scan() if i not in self._in_backend]
                held = self.inner.last_written(unknown) if unknown else {}
                self._in_backend.update(held)
                rows: dict[str, tuple[float, SessionRow | None]] = {}
                for sid in unknown:
                    if sid not in held:
                        rows[sid] = self._read_row(sid)
                self._rows = rows
                self._refreshed_at = time.monotonic()
            return [row for _, row in self._rows.values() if row is not None]

    def _read_row(self, session_id: str) -> tuple[float, SessionRow | None]:
        """(mtime, row) of one file; parsed again only when its mtime changed."""
        try:
            mtime = legacy_files.state_path(self.sessions_dir, session_id).stat().st_mtime
        except OSError:
            return 0.0, None
        cached = self._rows.get(session_id)
        if cached is not None and cached[0] == mtime:
            return cached
        state = legacy_files.read_state(self.sessions_dir, session_id)
        return mtime, None if state is None else self._file_row(session_id, state)

    def _forget(self, session_id: str) -> None:
        """The backend holds this session now (adopted or created here)."""
        with self._lock:
            self._in_backend.add(session_id)
            self._rows.pop(session_id, None)

    def _file_rows_for(self, user_id: str, filters: dict[str, Any]) -> list[SessionRow]:
        after = filters.get("after")
        query = filters.get("query")
        needle = query.lower() if isinstance(query, str) and query else None
        return [
            row
            for row in self._file_rows()
            if row.user_id == user_id
            and row.deleted_at is None
            and (after is None or after.admits(row))
            and (needle is None or needle in row.question.lower())
        ]
