"""One suite, every backend: what the rest of the app relies on from a StateStore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from council_app.store import ProgressWrite, RevisionConflict, SessionRow, StateStore
from council_app.store.legacy_files import write_json_atomic

SID = "session_20251210_160742_5b86ea"


def make_row(sid: str = SID, user: str = "alice", created: datetime | None = None) -> SessionRow:
    now = created or datetime.now(UTC)
    return SessionRow(sid, user, "Why?", "idle", "input", None, None, now, now)


def base_state(sid: str = SID, **extra: object) -> dict:
    state = {
        "session_id": sid,
        "user_id": "alice",
        "question": "Why?",
        "status": "idle",
        "current_step": "input",
        "x_unknown_key": {"kept": [1, 2, {"deep": "yes"}]},
    }
    state.update(extra)
    return state


def test_create_then_load_round_trips_unknown_keys(store: StateStore) -> None:
    store.create_session(make_row(), base_state(), revision=10)
    loaded = store.load(SID)
    assert loaded is not None
    assert loaded.revision == 10
    assert loaded.state["x_unknown_key"] == {"kept": [1, 2, {"deep": "yes"}]}
    assert loaded.state["question"] == "Why?"


def test_session_metadata_timestamps_are_aware_utc(store: StateStore) -> None:
    created = datetime(2025, 12, 10, 16, 7, 42, tzinfo=UTC)
    store.create_session(make_row(created=created), base_state(), revision=1)
    row = store.get_session(SID)
    assert row is not None
    assert row.created_at == created
    assert row.created_at.tzinfo is not None
    assert row.created_at.utcoffset() == timedelta(0)


def test_create_schema_is_idempotent(store: StateStore) -> None:
    store.create_session(make_row(), base_state(), revision=1)
    store.create_schema()
    store.create_schema()
    assert store.load(SID) is not None


def test_write_state_compare_and_set(store: StateStore) -> None:
    store.create_session(make_row(), base_state(), revision=5)
    store.write_state(SID, base_state(status="executing"), expected_revision=5, new_revision=6)
    with pytest.raises(RevisionConflict):
        store.write_state(SID, base_state(status="idle"), expected_revision=5, new_revision=7)
    loaded = store.load(SID)
    assert loaded is not None
    assert (loaded.revision, loaded.state["status"]) == (6, "executing")
    row = store.get_session(SID)
    assert row is not None and row.status == "executing"


def test_progress_merges_deeply_and_overlays_on_read(store: StateStore) -> None:
    store.create_session(make_row(), base_state(), revision=1)
    stale = store.write_progress(
        [ProgressWrite(SID, {"execution_status": {"A": "Thinking...", "B": "Queued"}}, 2)]
    )
    assert stale == []
    store.write_progress(
        [
            ProgressWrite(
                SID,
                {"execution_status": {"A": "Done"}, "progress": {"execution": 50}},
                3,
                {"cost_usd": 0.25, "total_tokens": 1200},
            )
        ]
    )
    loaded = store.load(SID)
    assert loaded is not None
    assert loaded.revision == 3
    assert loaded.state["execution_status"] == {"A": "Done", "B": "Queued"}
    assert loaded.state["progress"] == {"execution": 50}
    assert loaded.state["x_unknown_key"]["kept"][2] == {"deep": "yes"}
    hot_row, hot = store.load_hot(SID)  # type: ignore[misc]
    assert hot["execution_status"]["A"] == "Done"
    assert "x_unknown_key" not in hot
    assert (hot_row.user_id, hot_row.status, hot_row.deleted_at) == ("alice", "idle", None)
    row = store.get_session(SID)
    assert row is not None
    assert row.cost_usd == pytest.approx(0.25)
    assert row.total_tokens == 1200


def test_stale_progress_is_rejected(store: StateStore) -> None:
    store.create_session(make_row(), base_state(), revision=1)
    store.write_state(
        SID, base_state(execution_status={"A": "Done"}), expected_revision=1, new_revision=100
    )
    stale = store.write_progress([ProgressWrite(SID, {"execution_status": {"A": "Queued"}}, 50)])
    assert stale == [SID]
    loaded = store.load(SID)
    assert loaded is not None and loaded.state["execution_status"] == {"A": "Done"}


def test_state_write_folds_and_resets_hot_keys(store: StateStore) -> None:
    store.create_session(make_row(), base_state(), revision=1)
    store.write_progress([ProgressWrite(SID, {"execution_status": {"A": "Done"}}, 2)])
    cleared = base_state(status="ready_to_execute")  # a forced re-run drops old progress
    store.write_state(SID, cleared, expected_revision=2, new_revision=3)
    loaded = store.load(SID)
    assert loaded is not None
    assert "execution_status" not in loaded.state
    assert loaded.state["status"] == "ready_to_execute"


def test_progress_batch_of_many_sessions(store: StateStore) -> None:
    ids = [f"session_20251210_160742_{i:06x}" for i in range(200)]
    for sid in ids:
        store.create_session(make_row(sid), base_state(sid), revision=1)
    writes = [
        ProgressWrite(sid, {"progress": {"execution": i % 100}}, 2) for i, sid in enumerate(ids)
    ]
    assert store.write_progress(writes) == []
    for i, sid in enumerate(ids):
        loaded = store.load(sid)
        assert loaded is not None and loaded.state["progress"] == {"execution": i % 100}


def test_list_sessions_newest_first_per_user(store: StateStore) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(3):
        sid = f"session_20250101_00000{i}_aaaaa{i}"
        store.create_session(
            make_row(sid, created=base + timedelta(minutes=i)), base_state(sid), revision=1
        )
    store.create_session(make_row("session_20250101_000009_bbbbbb", user="bob"), base_state(), 1)
    rows = store.list_sessions("alice", limit=10, offset=0)
    assert [r.session_id[-6:] for r in rows] == ["aaaaa2", "aaaaa1", "aaaaa0"]
    assert [r.session_id[-6:] for r in store.list_sessions("alice", 1, 1)] == ["aaaaa1"]
    store.mark_deleted("session_20250101_000002_aaaaa2", hard=False)
    assert len(store.list_sessions("alice", 10, 0)) == 2


def test_soft_and_hard_delete(store: StateStore) -> None:
    store.create_session(make_row(), base_state(), revision=1)
    store.mark_deleted(SID, hard=False)
    row = store.get_session(SID)
    assert row is not None and row.deleted_at is not None
    loaded = store.load(SID)
    assert loaded is not None and loaded.state.get("deleted") is True
    store.mark_deleted(SID, hard=True)
    row = store.get_session(SID)
    assert row is not None and row.deleted_at is not None  # tombstone stays: 410, not 404
    assert store.load(SID) is None


def test_legacy_file_without_row_is_read_and_first_write_adopts_it(store, backend_settings):
    legacy = {"session_id": SID, "question": "Old one", "created_at": "2025-12-10T16:07:42.881056"}
    legacy["execution_results"] = {"execution_results": [{"agent_name": "A"}]}
    write_json_atomic(backend_settings.sessions_dir / SID / "state.json", legacy)
    row = store.get_session(SID)
    assert row is not None
    assert row.user_id == "dev-user@localhost"
    assert row.status == "execution_complete"
    assert row.created_at == datetime(2025, 12, 10, 16, 7, 42, 881056, tzinfo=UTC)
    loaded = store.load(SID)
    assert loaded is not None and loaded.revision == 0
    assert loaded.state["question"] == "Old one"
    store.write_state(SID, {**legacy, "status": "reviewing"}, expected_revision=0, new_revision=9)
    with pytest.raises(RevisionConflict):
        store.write_state(SID, legacy, expected_revision=0, new_revision=10)
    assert store.get_session(SID).status == "reviewing"  # type: ignore[union-attr]


def test_unknown_session(store: StateStore) -> None:
    assert store.get_session("session_20990101_000000_ffffff") is None
    assert store.load("session_20990101_000000_ffffff") is None
    assert store.load_hot("session_20990101_000000_ffffff") is None


def test_large_unicode_document_round_trips(store: StateStore) -> None:
    big = "Ünïcødé ✓ " * 30_000  # ~300 KB
    store.create_session(make_row(), base_state(chairman_verdict=big), revision=1)
    loaded = store.load(SID)
    assert loaded is not None and loaded.state["chairman_verdict"] == big
    assert len(orjson.dumps(loaded.state)) > 300_000


def test_run_progress_applies_while_its_run_is_current(store: StateStore) -> None:
    running = base_state(run={"id": "run-1", "cancel": False})
    store.create_session(make_row(), running, revision=1)
    # Another process writes (a cancel request) with a newer revision...
    store.write_state(
        SID,
        {**running, "run": {"id": "run-1", "cancel": True}},
        expected_revision=1,
        new_revision=100,
    )
    # ...the run's older progress still lands, and the revision does not go back.
    late = ProgressWrite(SID, {"execution_status": {"A": "Done"}}, 50, run_id="run-1")
    assert store.write_progress([late]) == []
    loaded = store.load(SID)
    assert loaded is not None
    assert loaded.state["execution_status"] == {"A": "Done"}
    assert loaded.state["run"] == {"id": "run-1", "cancel": True}
    assert loaded.revision == 100


def test_hot_keys_of_many_sessions_in_one_read(store: StateStore) -> None:
    ids = [f"session_20251210_160742_{i:06x}" for i in range(1200)]  # more than one chunk
    for i, sid in enumerate(ids):
        store.create_session(
            make_row(sid), base_state(sid, run={"id": f"run-{i}", "cancel": i % 7 == 0}), 1
        )
    store.write_progress([ProgressWrite(ids[5], {"progress": {"execution": 40}}, 2)])
    found = store.load_hot_many([*ids, "session_20251210_160742_ffffff"])
    assert sorted(found) == sorted(ids)  # the unknown id is left out
    assert [found[sid]["run"]["cancel"] for sid in ids] == [i % 7 == 0 for i in range(1200)]
    assert found[ids[5]]["progress"] == {"execution": 40}
    assert "x_unknown_key" not in found[ids[0]]  # hot keys only
    assert store.load_hot_many([]) == {}


def test_run_progress_is_rejected_once_the_run_is_replaced(store: StateStore) -> None:
    store.create_session(make_row(), base_state(run={"id": "run-2"}), revision=1)
    old = ProgressWrite(SID, {"execution_status": {"A": "Done"}}, 500, run_id="run-1")
    assert store.write_progress([old]) == [SID]
    store.write_state(SID, base_state(run=None), expected_revision=1, new_revision=2)
    assert store.write_progress([ProgressWrite(SID, {"x": 1}, 600, run_id="run-2")]) == [SID]
    loaded = store.load(SID)
    assert loaded is not None and "execution_status" not in loaded.state


def test_listing_includes_sessions_that_exist_only_as_files(store, backend_settings) -> None:
    old = "session_20240101_090000_0a0a0a"
    write_json_atomic(
        backend_settings.sessions_dir / old / "state.json",
        {"session_id": old, "question": "Old", "created_at": "2024-01-01T09:00:00"},
    )
    new = "session_20260101_090000_0b0b0b"
    store.create_session(
        make_row(new, user="dev-user@localhost", created=datetime(2026, 1, 1, tzinfo=UTC)),
        base_state(new),
        revision=1,
    )
    rows = store.list_sessions("dev-user@localhost", limit=10, offset=0)
    assert [r.session_id for r in rows] == [new, old]
    assert rows[1].question == "Old" and rows[1].status == "idle"
    assert [r.session_id for r in store.list_sessions("dev-user@localhost", 1, 1)] == [old]
    assert store.list_sessions("alice", 10, 0) == []
    # Once it has a row (adopted or migrated), it is listed once, from the database.
    store.write_state(
        old, {"session_id": old, "question": "Old"}, expected_revision=0, new_revision=5
    )
    ids = [r.session_id for r in store.list_sessions("dev-user@localhost", 10, 0)]
    assert sorted(ids) == sorted([new, old])


def test_metadata_of_odd_documents_fits_the_columns(store: StateStore) -> None:
    store.create_session(make_row(), base_state(), revision=1)
    odd = {
        "session_id": SID,
        "question": "Q",
        "chairman_verdict": "Yes.",  # an older document: no status at all
        "current_step": "x" * 100,
        "tokens": {"total_tokens": 2.0**70, "total_cost_usd": True},  # as orjson parses it
    }
    store.write_state(SID, odd, expected_revision=1, new_revision=2)
    row = store.get_session(SID)
    assert row is not None
    assert row.status == "verdict_complete"
    assert row.current_step == "x" * 32
    assert row.total_tokens is None and row.cost_usd is None
    assert store.load(SID).state["tokens"]["total_tokens"] == 2.0**70  # the document keeps it


# -- run checkpoints ---------------------------------------------------------------------


def test_member_checkpoints_round_trip_per_run_and_replace(store: StateStore) -> None:
    from council_app.store.base import MemberCheckpoint

    store.create_session(make_row(), base_state(), revision=1)
    first = MemberCheckpoint(SID, "execute", "A", "run-1", "done", {"entry": {"x": 1}})
    store.put_member(first)
    store.put_member(MemberCheckpoint(SID, "execute", "B", "run-1", "failed", {"entry": {}}))
    store.put_member(MemberCheckpoint(SID, "execute", "A", "run-2", "done", {"entry": {"x": 2}}))
    # The same member again in the same run replaces its row (a retry after a lost answer).
    store.put_member(MemberCheckpoint(SID, "execute", "A", "run-1", "done", {"entry": {"x": 3}}))
    got = {m.member: m for m in store.run_members("run-1")}
    assert set(got) == {"A", "B"}
    assert got["A"].result == {"entry": {"x": 3}} and got["B"].state == "failed"
    assert [m.result for m in store.run_members("run-2")] == [{"entry": {"x": 2}}]
    assert store.drop_members(SID, keep_run_id="run-2") == 2
    assert store.run_members("run-1") == []
    assert store.drop_members(SID) == 1
    assert store.run_members("run-2") == []


def test_member_checkpoint_cost_does_not_grow_with_the_document(store: StateStore) -> None:
    """A checkpoint is its own small row: the 300 KB document is neither read nor written."""
    from council_app.store.base import MemberCheckpoint

    big = base_state(blob="x" * 300_000)
    store.create_session(make_row(), big, revision=1)
    before = store.load(SID)
    assert before is not None
    store.put_member(MemberCheckpoint(SID, "review", "A", "run-9", "done", {"entry": {}}))
    after = store.load(SID)
    assert after is not None and after.revision == before.revision  # document untouched
