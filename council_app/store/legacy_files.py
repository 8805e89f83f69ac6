"""The legacy ``sessions/<id>/state.json`` files: durable writes, tolerant reads.

Shared by the file backend (its primary store), the fallback for sessions that exist only
as files (``legacy_fallback.py``), the state-file mirror (``mirror.py``) and
``migrate_state.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
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
    new one survives a crash once this returns (see ``write_bytes_atomic``)."""
    write_bytes_atomic(path, json_bytes(data))


def json_bytes(data: Any) -> bytes:
    """A document as state.json holds it (indented, as the old server wrote it)."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)


def write_bytes_atomic(
    path: Path, payload: bytes, *, durable_rename: bool = True, sync: bool = True
) -> None:
    """Temp file in the same directory, fsync, rename over, fsync the directory.

    The file's fsync before the rename is what makes it atomic (after a crash: the old
    file or the new one, whole).  ``durable_rename=False`` skips the directory's fsync:
    the new version may then be lost in a crash (the old one stays, whole).  ``sync=False``
    skips both: the caller syncs later (the state-file mirror groups its syncs, see
    ``mirror.py``); readers still never see a torn file, only a crash can lose it.

    Plain ``os`` calls, four system calls in the common case: the mirror runs this in a
    background thread beside requests, and every line of Python it runs holds the GIL
    they wait for (``tempfile``, ``Path.mkdir`` and a buffered file object made a small
    step write 1.15x slower, docs/BENCHMARKS.md).  The temp name is unique per process
    and thread, the only writers that could race on it.
    """
    target = os.fspath(path)
    folder = os.path.dirname(target)
    tmp = os.path.join(
        folder, f".{os.path.basename(target)}.{os.getpid()}.{threading.get_ident()}.tmp"
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileNotFoundError:  # a new session's folder: made once, then the fast path
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o600)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if not (durable_rename and sync):
        return
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# Hard deletions made while another backend was in charge (the state-file mirror on
# PostgreSQL): one file per session, holding when it was deleted.  A folder name starting
# with "_" is never a session id, so listings skip it.
HARD_DELETES_DIR = "_hard_deleted"


def record_hard_delete(sessions_dir: Path, session_id: str, when: datetime) -> None:
    """Remember that ``session_id`` was hard-deleted at ``when`` (for a rollback)."""
    path = Path(sessions_dir) / HARD_DELETES_DIR / session_id
    write_bytes_atomic(path, when.isoformat().encode(), durable_rename=False)


def hard_deletes(sessions_dir: Path) -> dict[str, datetime]:
    """Every recorded hard deletion: session id -> when."""
    found: dict[str, datetime] = {}
    try:
        entries = list(os.scandir(Path(sessions_dir) / HARD_DELETES_DIR))
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue  # a temp file of a write in progress
        try:
            when = parse_timestamp(Path(entry.path).read_text().strip())
        except (OSError, UnicodeDecodeError):
            continue
        if when is not None:
            found[entry.name] = when
    return found


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
