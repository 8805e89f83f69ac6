"""The embedded backend under several processes writing at once: never "database is locked"."""

from __future__ import annotations

import multiprocessing as mp
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from council_app.flusher import ProgressFlusher
from council_app.revisions import RevisionClock
from council_app.state import SessionStates
from council_app.store import SessionRow, build_store, legacy_files
from tests.conftest import sqlite_settings

WORKERS = 4
AGENTS = 5
ROUNDS = 40


def _worker(tmp: str, index: int, ids: list[str], errors: mp.Queue) -> None:
    settings = sqlite_settings(Path(tmp))
    store = build_store(settings)
    clock = RevisionClock()
    flusher = ProgressFlusher(store, 3600.0, clock)
    states = SessionStates(store, flusher, clock)
    try:
        for r in range(ROUNDS):
            for sid in ids:
                for a in range(AGENTS):  # five agents reporting progress
                    states.progress(sid, {"execution_status": {f"w{index}a{a}": f"round {r}"}})
            if not flusher.flush(timeout=30):
                errors.put(f"flush failed: {flusher.stats.last_error}")

            def bump(state: dict, r: int = r) -> None:
                state.setdefault("counter", {})[f"w{index}"] = r

            states.update(ids[r % len(ids)], bump)  # and compare-and-set state writes
    except Exception as e:  # report every error, whatever its type
        errors.put(f"{type(e).__name__}: {e}")
    finally:
        flusher.stop(timeout=5)
        store.close()


def test_many_processes_write_without_locking_errors(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path)
    store = build_store(settings)
    store.create_schema()
    clock = RevisionClock()
    ids = [f"session_20251210_160742_00000{i}" for i in range(3)]
    now = datetime.now(UTC)
    for sid in ids:
        store.create_session(
            SessionRow(sid, "u", "Q", "executing", "execute", None, None, now, now),
            {"session_id": sid, "question": "Q"},
            clock.next(),
        )
    ctx = mp.get_context("fork")
    errors: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path), i, ids, errors)) for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
    assert all(p.exitcode == 0 for p in procs)
    for sid in ids:
        state = store.load(sid).state
        assert len(state["execution_status"]) == WORKERS * AGENTS
        assert set(state["execution_status"].values()) == {f"round {ROUNDS - 1}"}
    # Every compare-and-set write landed: each worker's last bump of each session is there.
    for i, sid in enumerate(ids):
        last = max(r for r in range(ROUNDS) if r % len(ids) == i)
        assert store.load(sid).state["counter"] == {f"w{w}": last for w in range(WORKERS)}
    store.close()


def test_a_load_racing_a_hard_delete_finds_the_session_gone_not_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load's snapshot holds the row; the delete commits and removes the folder before
    the load reads state.json.  Empty content would make /execute answer "build the council
    first" (400) instead of 404/410 (caught by CI in the hard-delete-vs-execute race)."""
    settings = sqlite_settings(tmp_path)
    store = build_store(settings)
    store.create_schema()
    sid = "session_20251210_160742_000009"
    now = datetime.now(UTC)
    store.create_session(
        SessionRow(sid, "u", "Q", "council_ready", "execute", None, None, now, now),
        {"session_id": sid, "question": "Q", "council": [{"name": "Ada"}]},
        RevisionClock().next(),
    )
    real_read = legacy_files.read_state
    deletes = []

    def read_after_a_delete(sessions_dir: Path, session_id: str) -> dict | None:
        if not deletes:  # the delete runs on another connection while the load's is open
            deleter = threading.Thread(
                target=store.mark_deleted, args=(sid,), kwargs={"hard": True}
            )
            deleter.start()
            deleter.join(10)
            deletes.append(sid)
        return real_read(sessions_dir, session_id)

    monkeypatch.setattr(legacy_files, "read_state", read_after_a_delete)
    try:
        assert store.load(sid) is None
        assert deletes == [sid]
        assert not (tmp_path / "sessions" / sid).exists() or not any(
            (tmp_path / "sessions" / sid).iterdir()
        )
    finally:
        store.close()
