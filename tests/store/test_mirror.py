"""StateFileMirror on real PostgreSQL: step writes reach state.json, progress flushes don't,
deletions are kept, failures never fail the write, a forked worker mirrors its own writes."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from council_app.settings import Settings
from council_app.store import ProgressWrite, SessionRow, build_store, legacy_files
from council_app.store.decorator import unwrap
from council_app.store.legacy_files import state_path
from council_app.store.mirror import StateFileMirror
from tests.conftest import postgres_settings

SID = "session_20251210_160742_5b86ea"


@pytest.fixture
def pg_settings(pg_url: str, tmp_path: Path) -> Settings:
    return postgres_settings(pg_url, tmp_path)


@pytest.fixture
def mirror(pg_settings: Settings) -> Iterator[StateFileMirror]:
    store = build_store(pg_settings)
    assert isinstance(store, StateFileMirror)  # on by default
    store.create_schema()
    yield store
    store.close()


def row(sid: str = SID, user: str = "alice") -> SessionRow:
    now = datetime.now(UTC)
    return SessionRow(sid, user, "Why?", "idle", "input", None, None, now, now)


def doc(sid: str = SID, **extra: Any) -> dict[str, Any]:
    return {"session_id": sid, "user_id": "alice", "question": "Why?", "status": "idle", **extra}


def on_disk(settings: Settings, sid: str = SID) -> dict[str, Any]:
    return orjson.loads(state_path(settings.sessions_dir, sid).read_bytes())


def test_step_writes_are_mirrored_and_progress_flushes_are_not(
    mirror: StateFileMirror, pg_settings: Settings
) -> None:
    mirror.create_session(row(), doc(), revision=1)
    assert mirror.flush(10)
    assert on_disk(pg_settings) == doc()
    executed = doc(status="execution_complete", execution_results={"execution_results": []})
    mirror.write_state(SID, executed, expected_revision=1, new_revision=2)
    assert mirror.flush(10)
    assert on_disk(pg_settings) == executed
    before = state_path(pg_settings.sessions_dir, SID).stat().st_mtime_ns
    written = mirror.written
    assert mirror.write_progress([ProgressWrite(SID, {"progress": {"review": 50}}, 3)]) == []
    assert mirror.flush(10)
    assert mirror.written == written  # nothing queued for a progress flush
    assert state_path(pg_settings.sessions_dir, SID).stat().st_mtime_ns == before
    assert on_disk(pg_settings) == executed
    loaded = mirror.load(SID)  # ...which did reach the database
    assert loaded is not None and loaded.state["progress"] == {"review": 50}


def test_writes_are_coalesced_and_the_newest_wins(
    mirror: StateFileMirror, pg_settings: Settings
) -> None:
    mirror.create_session(row(), doc(n=0), revision=1)
    for n in range(1, 101):
        mirror.write_state(SID, doc(n=n), expected_revision=n, new_revision=n + 1)
    assert mirror.flush(10)
    assert on_disk(pg_settings)["n"] == 100
    assert 1 <= mirror.written <= 101 and mirror.failures == 0


def test_deletions_are_mirrored(mirror: StateFileMirror, pg_settings: Settings) -> None:
    soft, hard = SID, "session_20251210_160742_aaaaaa"
    for sid in (soft, hard):
        mirror.create_session(row(sid), doc(sid), revision=1)
    mirror.mark_deleted(soft, hard=False)
    mirror.mark_deleted(hard, hard=True)
    assert mirror.flush(10)
    assert on_disk(pg_settings, soft)["deleted"] is True  # a rollback keeps it deleted
    assert on_disk(pg_settings, soft)["question"] == "Why?"
    assert not state_path(pg_settings.sessions_dir, hard).exists()


def test_owner_is_written_into_documents_that_lack_it(
    mirror: StateFileMirror, pg_settings: Settings
) -> None:
    """A session migrated from an old file without user_id: the owner is the row's."""
    unwrap(mirror).create_session(row(user="bob"), {"question": "Old"}, revision=1)
    mirror.write_state(
        SID, {"question": "Old", "status": "idle"}, expected_revision=1, new_revision=2
    )
    assert mirror.flush(10)
    assert on_disk(pg_settings)["user_id"] == "bob"


def test_a_failed_file_write_is_logged_never_raised(
    pg_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    backend = build_store(dataclasses.replace(pg_settings, state_file_mirror=False))
    mirror = StateFileMirror(backend, pg_settings.sessions_dir, retry_delays_s=(0.01, 0.02))
    mirror.create_schema()
    try:
        pg_settings.sessions_dir.mkdir(parents=True, exist_ok=True)
        (pg_settings.sessions_dir / SID).write_text("a file where the session folder should be")
        with caplog.at_level(logging.WARNING, logger="council_app.store.mirror"):
            mirror.create_session(row(), doc(), revision=1)  # no exception
            assert mirror.flush(10)
        assert mirror.failures == 3  # the attempt and its two retries
        messages = [r.getMessage() for r in caplog.records if SID in r.getMessage()]
        assert sum("retrying" in m for m in messages) == 2
        assert any("given up" in m for m in messages)
        assert mirror.load(SID) is not None  # the database write stands
    finally:
        mirror.close()


def test_a_transient_failure_is_retried(
    mirror: StateFileMirror, pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk, say: the first attempt fails, the retry writes the file."""
    real = legacy_files.write_bytes_atomic
    calls: list[Path] = []

    def full_once(path: Path, payload: bytes, **kwargs: Any) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real(path, payload, **kwargs)

    monkeypatch.setattr(legacy_files, "write_bytes_atomic", full_once)
    mirror.create_session(row(), doc(), revision=1)
    assert mirror.flush(10)
    assert len(calls) == 2 and mirror.failures == 1
    assert on_disk(pg_settings) == doc()


def test_mirror_off_writes_no_file(pg_settings: Settings) -> None:
    store = build_store(dataclasses.replace(pg_settings, state_file_mirror=False))
    try:
        assert not isinstance(store, StateFileMirror)
        store.create_schema()
        store.create_session(row(), doc(), revision=1)
        assert not state_path(pg_settings.sessions_dir, SID).exists()
    finally:
        store.close()


def test_a_forked_worker_mirrors_its_own_writes(
    mirror: StateFileMirror, pg_settings: Settings
) -> None:
    mirror.create_session(row(), doc(), revision=1)
    assert mirror.flush(10)  # the parent's thread is running when the worker forks
    pid = os.fork()
    if pid == 0:  # the worker: fresh connections, its own (lazy) mirror thread
        code = 1
        try:
            mirror.after_fork()
            mirror.write_state(SID, doc(by="child"), expected_revision=1, new_revision=2)
            code = 0 if mirror.flush(10) and on_disk(pg_settings)["by"] == "child" else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert on_disk(pg_settings)["by"] == "child"
    mirror.write_state(SID, doc(by="parent"), expected_revision=2, new_revision=3)
    assert mirror.flush(10)
    assert on_disk(pg_settings)["by"] == "parent"


def test_a_hard_delete_waits_out_a_write_in_flight_and_nothing_comes_back(
    mirror: StateFileMirror, pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller removes the folder right after a hard delete: a copy of an older version
    still being written then must not recreate it (seen as a flaky API test before)."""
    import shutil
    import threading

    entered, release = threading.Event(), threading.Event()
    real_write = legacy_files.write_bytes_atomic

    def slow_write(path: Path, payload: bytes, **kwargs: Any) -> None:
        entered.set()
        assert release.wait(10)
        real_write(path, payload, **kwargs)

    mirror.create_session(row(), doc(), revision=1)
    assert mirror.flush(10)
    monkeypatch.setattr(legacy_files, "write_bytes_atomic", slow_write)
    mirror.write_state(SID, doc(status="execution_complete"), expected_revision=1, new_revision=2)
    assert entered.wait(10)  # the thread is inside the write of the executed version

    deleted = threading.Event()

    def delete() -> None:
        mirror.mark_deleted(SID, hard=True)
        deleted.set()

    deleter = threading.Thread(target=delete)
    deleter.start()
    assert not deleted.wait(0.3)  # the delete waits for the write in flight...
    release.set()
    deleter.join(10)
    assert deleted.is_set()
    folder = state_path(pg_settings.sessions_dir, SID).parent
    shutil.rmtree(folder)  # ...so the caller's removal is the last word
    assert mirror.flush(10)
    assert not folder.exists()


def test_a_pre_move_session_hard_deleted_on_postgresql_stays_gone_after_a_rollback(
    mirror: StateFileMirror, pg_settings: Settings, tmp_path: Path
) -> None:
    """It was in the embedded backend's SQLite before the move; the mirror records its hard
    delete, and the embedded backend's next start deletes the old row too."""
    from tests.conftest import sqlite_settings

    embedded = sqlite_settings(tmp_path)
    assert embedded.sessions_dir == pg_settings.sessions_dir
    kept_sid = "session_20251210_160742_bbbbbb"
    before = build_store(embedded)
    before.create_schema()
    for sid in (SID, kept_sid):
        before.create_session(row(sid), doc(sid), revision=1)
    before.close()

    for sid in (SID, kept_sid):  # migrated, then worked on PostgreSQL
        mirror.create_session(row(sid), doc(sid), revision=2)
    mirror.mark_deleted(SID, hard=True)
    assert mirror.flush(10)
    assert legacy_files.hard_deletes(pg_settings.sessions_dir).keys() == {SID}

    after = build_store(embedded)  # DATABASE_URL unset, restart
    after.create_schema()
    try:
        gone = after.get_session(SID)
        assert gone is None or gone.deleted_at is not None
        assert after.load(SID) is None
        kept = after.get_session(kept_sid)
        assert kept is not None and kept.deleted_at is None
        assert [r.session_id for r in after.list_sessions("alice", 10, 0)] == [kept_sid]
    finally:
        after.close()
