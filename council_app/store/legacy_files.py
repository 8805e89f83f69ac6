"""The legacy ``sessions/<id>/state.json`` files: durable writes, tolerant reads.

Shared by the file backend (its primary store), the PostgreSQL backend (a read-only
fallback for sessions not migrated yet) and ``migrate_state.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from council_app.session_ids import is_valid_session_id
from council_app.settings import DEV_USER
from council_app.store.base import SessionRow, meta_from_state

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


def state_path(sessions_dir: Path, session_id: str) -> Path:
    if not is_valid_session_id(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    return Path(sessions_dir) / session_id / STATE_FILE


def read_state(sessions_dir: Path, session_id: str) -> dict[str, Any] | None:
    """The file's document, or None when it is missing or unreadable (logged)."""
    try:
        path = state_path(sessions_dir, session_id)
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("Unreadable state file for %s: %s", session_id, e)
        return None
    if not isinstance(data, dict):
        log.warning("State file for %s is not a JSON object", session_id)
        return None
    return data


def write_json_atomic(path: Path, data: Any) -> None:
    """Write so that a reader sees the old file or the new one, never a torn one, and the
    new one survives a crash once this returns: temp file in the same directory, fsync,
    rename over, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = orjson.dumps(data, option=orjson.OPT_INDENT_2)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def parse_timestamp(value: Any) -> datetime | None:
    """ISO 8601 to aware UTC; legacy timestamps carry no zone and are UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value.strip():
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def session_row(session_id: str, state: dict[str, Any], default_user: str = DEV_USER) -> SessionRow:
    """Metadata derived from a document (for sessions that have no metadata row)."""
    created = parse_timestamp(state.get("created_at"))
    updated = parse_timestamp(state.get("updated_at")) or created
    fallback = _timestamp_from_id(session_id) or datetime.now(UTC)
    meta = meta_from_state(state)
    user = state.get("user_id")
    deleted = state.get("deleted") is True
    return SessionRow(
        session_id=session_id,
        user_id=user if isinstance(user, str) and user else default_user,
        question=meta["question"],
        status=meta["status"],
        current_step=meta["current_step"],
        cost_usd=meta["cost"],
        total_tokens=meta["total_tokens"],
        created_at=created or fallback,
        updated_at=updated or fallback,
        deleted_at=(updated or fallback) if deleted else None,
    )


def _timestamp_from_id(session_id: str) -> datetime | None:
    try:
        _, day, clock, _ = session_id.split("_", 3)
        return datetime.strptime(day + clock, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


class LegacyIndex:
    """Sessions that exist only as ``state.json`` files (not migrated yet), for listings.

    Session ids start with their creation time, so the newest come first by name; files
    are read only as far as a page needs, and what was read is remembered.
    """

    RESCAN_AFTER_S = 5.0

    def __init__(self, sessions_dir: Path) -> None:
        self.sessions_dir = Path(sessions_dir)
        self._ids: list[str] = []
        self._rows: dict[str, SessionRow | None] = {}
        self._known_in_db: set[str] = set()
        self._mtime: float | None = None
        self._scanned_at = 0.0
        self._lock = threading.Lock()

    def _candidates(self) -> list[str]:
        with self._lock:
            try:
                mtime = self.sessions_dir.stat().st_mtime
            except FileNotFoundError:
                return []
            stale = time.monotonic() - self._scanned_at > self.RESCAN_AFTER_S
            if mtime != self._mtime and (stale or self._mtime is None):
                with os.scandir(self.sessions_dir) as entries:
                    ids = [
                        e.name
                        for e in entries
                        if is_valid_session_id(e.name)
                        and e.name not in self._known_in_db
                        and (self.sessions_dir / e.name / STATE_FILE).is_file()
                    ]
                self._ids = sorted(ids, reverse=True)
                self._mtime = mtime
                self._scanned_at = time.monotonic()
            return [i for i in self._ids if i not in self._known_in_db]

    def _row(self, session_id: str) -> SessionRow | None:
        if session_id not in self._rows:
            state = read_state(self.sessions_dir, session_id)
            self._rows[session_id] = None if state is None else session_row(session_id, state)
        return self._rows[session_id]

    def merge(
        self,
        db_rows: list[SessionRow],
        in_db: Callable[[list[str]], set[str]],
        user_id: str,
        limit: int,
        offset: int,
    ) -> list[SessionRow]:
        """``db_rows`` (the first offset+limit of the user's rows) plus file-only sessions."""
        candidates = self._candidates()
        if candidates:
            present = in_db(candidates)
            with self._lock:
                self._known_in_db.update(present)
            candidates = [c for c in candidates if c not in present]
        extra: list[SessionRow] = []
        for sid in candidates:
            row = self._row(sid)
            if row is not None and row.user_id == user_id and row.deleted_at is None:
                extra.append(row)
                if len(extra) >= offset + limit:
                    break
        if not extra:
            return db_rows[offset : offset + limit]
        merged = sorted(db_rows + extra, key=lambda r: (r.created_at, r.session_id), reverse=True)
        return merged[offset : offset + limit]
