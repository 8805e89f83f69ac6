"""Last resort when the process must exit while the database is down.

What could not be written (pending progress, a finished run's results) goes to a file:
``SESSIONS_DIR/_recovery/<session_id>.json``, and the full document of a finished run
also to the session's ``state.json``.  The next start replays these files through the
normal revision checks (so they never overwrite anything newer) and removes them.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import orjson

from council_app.session_ids import is_valid_session_id
from council_app.store.base import ProgressWrite, RevisionConflict, StateStore, StoreError
from council_app.store.legacy_files import state_path, write_json_atomic

log = logging.getLogger(__name__)

RECOVERY_DIR = "_recovery"


def _path(sessions_dir: Path, session_id: str) -> Path:
    return Path(sessions_dir) / RECOVERY_DIR / f"{session_id}.json"


def save(
    sessions_dir: Path,
    session_id: str,
    *,
    progress: ProgressWrite | None = None,
    state: tuple[dict[str, Any], int] | None = None,
) -> None:
    """Record what could not reach the database (merging with an earlier record)."""
    path = _path(sessions_dir, session_id)
    record: dict[str, Any] = {"session_id": session_id}
    if path.exists():
        with contextlib.suppress(ValueError):
            record = orjson.loads(path.read_bytes())
    if progress is not None:
        # The write itself, less the session id the file is named by.
        record["progress"] = {k: v for k, v in asdict(progress).items() if k != "session_id"}
    if state is not None:
        doc, revision = state
        record["state"] = {"doc": doc, "revision": revision}
        write_json_atomic(state_path(sessions_dir, session_id), doc)
    write_json_atomic(path, record)
    log.warning("Database unavailable at exit: kept %s in %s", session_id, path)


def replay(store: StateStore, sessions_dir: Path) -> int:
    """Apply and remove recovery files; returns how many sessions were recovered."""
    folder = Path(sessions_dir) / RECOVERY_DIR
    if not folder.is_dir():
        return 0
    done = 0
    for path in sorted(folder.glob("*.json")):
        session_id = path.stem
        if not is_valid_session_id(session_id):
            continue
        try:
            record = orjson.loads(path.read_bytes())
            _apply(store, session_id, record)
        except (ValueError, OSError) as e:
            log.error("Recovery file %s is unreadable: %s", path, e)
            continue
        except StoreError as e:
            log.warning("Recovery of %s postponed: %s", session_id, e)
            continue
        path.unlink(missing_ok=True)
        done += 1
    if done:
        log.info("Recovered state of %d sessions written while the database was down", done)
    return done


def _apply(store: StateStore, session_id: str, record: dict[str, Any]) -> None:
    saved_state = record.get("state")
    if saved_state:
        for _ in range(5):
            current = store.load(session_id)
            current_revision = current.revision if current else 0
            if current_revision >= saved_state["revision"]:
                break  # something newer was stored meanwhile: it wins
            try:
                store.write_state(
                    session_id,
                    saved_state["doc"],
                    expected_revision=current_revision,
                    new_revision=saved_state["revision"],
                )
                break
            except RevisionConflict:
                continue
    saved_progress = record.get("progress")
    if saved_progress:
        store.write_progress([_progress_write(session_id, saved_progress)])


def _progress_write(session_id: str, saved: dict[str, Any]) -> ProgressWrite:
    """The ``ProgressWrite`` a record holds (files from older versions have the same keys)."""
    known = {f.name for f in fields(ProgressWrite)} - {"session_id"}
    values = {k: v for k, v in saved.items() if k in known}
    values["meta"] = values.get("meta") or {}
    return ProgressWrite(session_id, **values)
