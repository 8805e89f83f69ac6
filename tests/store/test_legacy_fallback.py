"""LegacyFileFallback: sessions that exist only as state.json, on both backends.

Listed for their owners (the file's user_id, else MIGRATION_ADMIN_EXTERNAL_ID / the dev
user), readable, adopted on first write; the backends alone know nothing of files; the
index is not rebuilt per request.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from council_app.settings import DEV_USER, Settings
from council_app.store import (
    RevisionConflict,
    SessionRow,
    StateStore,
    build_store,
    legacy_fallback,
    legacy_files,
)
from council_app.store.decorator import unwrap
from council_app.store.legacy_fallback import LegacyFileFallback
from council_app.store.legacy_files import write_json_atomic
from tests.conftest import sqlite_settings

ALICE_OLD = "session_20240101_090000_0a0a0a"
NO_OWNER = "session_20240102_090000_0b0b0b"
DELETED = "session_20240103_090000_0c0c0c"
BOB_OLD = "session_20240104_090000_0d0d0d"


def legacy_doc(sid: str, **extra: Any) -> dict[str, Any]:
    day = f"{sid[8:12]}-{sid[12:14]}-{sid[14:16]}T09:00:00"
    doc: dict[str, Any] = {"session_id": sid, "question": f"Q {sid}", "created_at": day}
    doc.update(extra)
    return doc


def write_files(sessions_dir: Path) -> dict[str, dict[str, Any]]:
    docs = {
        ALICE_OLD: legacy_doc(ALICE_OLD, user_id="alice", chairman_verdict="Yes."),
        NO_OWNER: legacy_doc(NO_OWNER),  # an older file: no user_id, no status
        DELETED: legacy_doc(DELETED, user_id="alice", deleted=True),
        BOB_OLD: legacy_doc(BOB_OLD, user_id="bob", status="review_complete"),
    }
    for sid, doc in docs.items():
        write_json_atomic(sessions_dir / sid / "state.json", doc)
    return docs


def fresh(settings: Settings, **overrides: Any) -> StateStore:
    store = build_store(dataclasses.replace(settings, **overrides))
    store.create_schema()
    return store


@pytest.fixture
def files_and_store(backend_settings: Settings) -> Iterator[tuple[dict, StateStore]]:
    docs = write_files(backend_settings.sessions_dir)
    store = fresh(backend_settings)
    yield docs, store
    store.close()


def ids(rows: list[SessionRow]) -> list[str]:
    return [r.session_id for r in rows]


def test_file_only_sessions_are_listed_for_their_owners(files_and_store) -> None:
    _, store = files_and_store
    assert ids(store.list_sessions("alice", 10, 0)) == [ALICE_OLD]  # the deleted one is not
    assert ids(store.list_sessions("bob", 10, 0)) == [BOB_OLD]
    assert ids(store.list_sessions(DEV_USER, 10, 0)) == [NO_OWNER]  # a file naming nobody
    row = store.get_session(ALICE_OLD)
    assert row is not None and row.user_id == "alice" and row.status == "verdict_complete"
    assert row.created_at == datetime(2024, 1, 1, 9, tzinfo=UTC)
    deleted = store.get_session(DELETED)
    assert deleted is not None and deleted.deleted_at is not None  # 410, not 404
    stored = store.load(BOB_OLD)
    assert (
        stored is not None
        and stored.revision == 0
        and stored.state["status"] == ("review_complete")
    )
    hot = store.load_hot(BOB_OLD)
    assert hot is not None and hot[0].user_id == "bob" and hot[1] == {"status": "review_complete"}


def test_ownerless_files_go_to_the_migration_admin(backend_settings: Settings) -> None:
    write_files(backend_settings.sessions_dir)
    store = fresh(backend_settings, migration_admin_external_id="admin@corp.example")
    try:
        assert ids(store.list_sessions("admin@corp.example", 10, 0)) == [NO_OWNER]
        assert store.list_sessions(DEV_USER, 10, 0) == []
        stored = store.load(NO_OWNER)
        assert stored is not None
        store.write_state(NO_OWNER, stored.state, expected_revision=0, new_revision=7)
        row = unwrap(store).get_session(NO_OWNER)  # adopted: the backend has the owner now
        assert row is not None and row.user_id == "admin@corp.example"
    finally:
        store.close()


def test_first_write_adopts_the_session_into_the_backend(files_and_store) -> None:
    docs, store = files_and_store
    backend = unwrap(store)
    assert backend.get_session(ALICE_OLD) is None  # the backend alone knows no files
    assert backend.load(ALICE_OLD) is None and backend.load_hot(ALICE_OLD) is None
    assert backend.list_sessions("alice", 10, 0) == []
    changed = {**docs[ALICE_OLD], "status": "reviewing", "x_unknown": [1, {"kept": True}]}
    store.write_state(ALICE_OLD, changed, expected_revision=0, new_revision=9)
    with pytest.raises(RevisionConflict):  # a second adopter loses
        store.write_state(ALICE_OLD, docs[ALICE_OLD], expected_revision=0, new_revision=10)
    row = backend.get_session(ALICE_OLD)
    assert row is not None and row.user_id == "alice" and row.status == "reviewing"
    assert row.created_at == datetime(2024, 1, 1, 9, tzinfo=UTC)
    loaded = store.load(ALICE_OLD)
    assert loaded is not None and loaded.revision == 9
    assert loaded.state["x_unknown"] == [1, {"kept": True}]
    assert ids(store.list_sessions("alice", 10, 0)) == [ALICE_OLD]  # listed once


def test_deleting_a_file_only_session_leaves_a_tombstone(files_and_store) -> None:
    _, store = files_and_store
    store.mark_deleted(BOB_OLD, hard=False)
    row = store.get_session(BOB_OLD)
    assert row is not None and row.deleted_at is not None
    assert store.list_sessions("bob", 10, 0) == []
    loaded = store.load(BOB_OLD)
    assert loaded is not None and loaded.state.get("deleted") is True


def test_listing_merges_pages_with_backend_rows(files_and_store) -> None:
    _, store = files_and_store
    new = "session_20260101_090000_0e0e0e"
    now = datetime(2026, 1, 1, 9, tzinfo=UTC)
    store.create_session(
        SessionRow(new, "alice", "New", "idle", "input", None, None, now, now),
        {"session_id": new, "user_id": "alice", "question": "New"},
        revision=1,
    )
    assert ids(store.list_sessions("alice", 10, 0)) == [new, ALICE_OLD]
    assert ids(store.list_sessions("alice", 1, 0)) == [new]
    assert ids(store.list_sessions("alice", 1, 1)) == [ALICE_OLD]
    assert store.list_sessions("alice", 5, 2) == []


class Counter:
    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.target(*args, **kwargs)


def test_listings_do_not_rescan_or_reread_per_request(
    files_and_store, backend_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, store = files_and_store
    fallback = store
    while not isinstance(fallback, LegacyFileFallback):  # under the mirror on PostgreSQL
        fallback = fallback.inner  # type: ignore[attr-defined]
    scans = Counter(os.scandir)
    reads = Counter(legacy_files.read_state)
    monkeypatch.setattr(legacy_fallback.os, "scandir", scans)
    monkeypatch.setattr(legacy_fallback.legacy_files, "read_state", reads)
    for _ in range(50):
        assert ids(store.list_sessions("alice", 10, 0)) == [ALICE_OLD]
        assert ids(store.list_sessions("bob", 10, 0)) == [BOB_OLD]
    assert scans.calls <= 1  # the folder was listed at most once (the index is fresh)
    assert reads.calls <= 4  # each file parsed at most once
    # A new folder shows up once the index is refreshed (its interval made 0 here).
    fallback.RESCAN_AFTER_S = 0.0
    later = "session_20240105_090000_0f0f0f"
    write_json_atomic(
        backend_settings.sessions_dir / later / "state.json", legacy_doc(later, user_id="bob")
    )
    assert ids(store.list_sessions("bob", 10, 0)) == [later, BOB_OLD]
    before = reads.calls
    for _ in range(20):
        store.list_sessions("bob", 10, 0)
    assert reads.calls == before  # unchanged files are not parsed again


def test_embedded_start_lays_newer_files_over_stale_rows(tmp_path: Path) -> None:
    """After a rollback, a session SQLite knew from before the move to PostgreSQL has its
    later steps only in the (mirrored) file: the file wins at start, the rows follow."""
    settings = sqlite_settings(tmp_path)
    sid = "session_20251210_160742_5b86ea"
    old = datetime.now(UTC) - timedelta(days=2)
    store = fresh(settings)
    store.create_session(
        SessionRow(sid, "alice", "Q", "idle", "input", None, None, old, old),
        {"session_id": sid, "user_id": "alice", "question": "Q", "status": "idle"},
        revision=5,
    )
    store.close()
    later = {
        "session_id": sid,
        "user_id": "alice",
        "question": "Q",
        "status": "review_complete",
        "current_step": "review",
        "peer_reviews": [{"reviewer": "A"}],
        "updated_at": datetime.now(UTC).isoformat(),
    }
    path = legacy_files.state_path(settings.sessions_dir, sid)
    write_json_atomic(path, later)
    future = datetime.now(UTC).timestamp() + 5
    os.utime(path, (future, future))
    restarted = fresh(settings)
    try:
        hot = restarted.load_hot(sid)
        assert hot is not None and hot[0].status == "review_complete"
        assert hot[1]["current_step"] == "review"
        loaded = restarted.load(sid)
        assert loaded is not None and loaded.revision > 5
        assert loaded.state["peer_reviews"] == [{"reviewer": "A"}]
        assert ids(restarted.list_sessions("alice", 10, 0)) == [sid]
        again = fresh(settings)  # a second start (another worker) changes nothing more
        assert again.load(sid).revision == loaded.revision  # type: ignore[union-attr]
        again.close()
    finally:
        restarted.close()


def test_a_hard_deleted_session_is_not_served_from_a_leftover_file(
    files_and_store, backend_settings: Settings
) -> None:
    """Its tombstone stays (410); a state.json left behind (a mirror copy not yet removed,
    an operator's backup) must not bring the document back."""
    docs, store = files_and_store
    store.write_state(BOB_OLD, docs[BOB_OLD], expected_revision=0, new_revision=3)
    store.mark_deleted(BOB_OLD, hard=True)
    write_json_atomic(backend_settings.sessions_dir / BOB_OLD / "state.json", docs[BOB_OLD])
    row = store.get_session(BOB_OLD)
    assert row is not None and row.deleted_at is not None
    assert store.load(BOB_OLD) is None
    assert store.list_sessions("bob", 10, 0) == []
