"""migrate_state.py against a real PostgreSQL: migrate, rerun, newer rows, dry run, verify,
export.  One mixed legacy tree (good, corrupt, empty, huge, unicode, naive timestamps) and a
legacy SQLite database per test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import sqlalchemy as sa

from council_app.settings import Settings
from council_app.store import build_store
from council_app.store.base import hot_part
from council_app.store.postgres import PostgresStore
from tests.migration.legacy_tree import (
    BASE_TIME,
    MixedTree,
    make_state,
    write_state_file,
    write_tree,
)
from tests.migration.migration_helpers import Cli, canonical, snapshot


def pg_store(url: str, sessions_dir: Path) -> PostgresStore:
    return PostgresStore(Settings(database_url=url, sessions_dir=sessions_dir))


def file_doc(tree_dir: Path, sid: str) -> dict:
    return orjson.loads((tree_dir / sid / "state.json").read_bytes())


def rows(url: str, sql: str) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql))
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def test_first_run_migrates_everything_and_reports_each_failure(
    cli: Cli, mixed: MixedTree, pg_url: str
) -> None:
    before = snapshot(mixed.sessions_dir.parent)
    result = cli("--sessions-dir", str(mixed.sessions_dir))
    assert result.code == 1  # some sessions failed
    counts = result.counts
    assert counts["migrated"] == len(mixed.migratable)
    assert counts["failed"] == len(mixed.failing)
    assert counts["scanned"] == len(mixed.migratable) + len(mixed.failing)
    assert counts["updated"] == counts["unchanged"] == counts["skipped"] == 0
    reasons = {f["session_id"]: f for f in result.summary["failures"]}
    for sid, words in mixed.failing.items():
        assert words.lower() in reasons[sid]["reason"].lower(), reasons[sid]
    assert all(f["file"] for f in reasons.values())

    store = pg_store(pg_url, mixed.sessions_dir)
    try:
        for sid in mixed.good:
            loaded = store.load(sid)
            assert loaded is not None and loaded.revision > 0
            # Stored exactly as the file: unknown keys, unicode, the 5 MB one.
            assert canonical(loaded.state) == canonical(file_doc(mixed.sessions_dir, sid))
        assert len(orjson.dumps(store.load(mixed.huge).state)) > 4_000_000
        old = mixed.old_style
        meta = store.get_session(old)
        assert meta is not None
        assert meta.user_id == "bob@example.com"  # from the legacy SQLite row
        assert meta.status == "verdict_complete"  # derived from the content
        assert meta.created_at == BASE_TIME.replace(tzinfo=UTC)  # naive taken as UTC
        assert meta.question.startswith("Façade or 建筑?")
        assert "status" not in store.load(old).state  # nothing added to the document
        only_question = store.get_session(mixed.only_question)
        assert only_question is not None and only_question.user_id == "dev-user@localhost"
        for sid in mixed.legacy_only:
            meta = store.get_session(sid)
            assert meta is not None and meta.user_id == "carol@example.com"
            assert store.load(sid).state["session_id"] == sid
        no_state = next(sid for sid, words in mixed.failing.items() if words == "no state")
        assert store.get_session(no_state) is None  # failed: nothing half-carried
        gone = store.get_session(mixed.legacy_deleted)
        assert gone is not None and gone.user_id == "erin"
        assert gone.deleted_at == datetime(2025, 12, 11, 10, 0, 0, 500000, tzinfo=UTC)
    finally:
        store.close()
    progress = rows(pg_url, "SELECT session_id, progress FROM session_state")
    for sid, hot in progress:
        assert hot == hot_part(store_state(pg_url, sid))
    assert snapshot(mixed.sessions_dir.parent) == before  # files never modified


def store_state(url: str, sid: str) -> dict:
    (row,) = rows(url, f"SELECT state FROM session_state WHERE session_id = '{sid}'")
    return row[0]


def test_second_run_changes_nothing(cli: Cli, mixed: MixedTree, pg_url: str) -> None:
    assert cli("--sessions-dir", str(mixed.sessions_dir)).code == 1
    query = "SELECT session_id, revision, updated_at FROM session_state ORDER BY 1"
    stored = rows(pg_url, query)
    result = cli("--sessions-dir", str(mixed.sessions_dir), "--verbose", json=False)
    assert result.code == 1
    lines = result.out.splitlines()
    for sid in mixed.migratable:
        assert any(line.startswith(f"{'unchanged':<26}{sid}  (from ") for line in lines)
    again = cli("--sessions-dir", str(mixed.sessions_dir)).counts
    assert again["unchanged"] == len(mixed.migratable)
    assert again["migrated"] == again["updated"] == again["skipped"] == 0
    assert rows(pg_url, query) == stored


def test_newer_row_is_kept_and_force_overrides(cli: Cli, tmp_path: Path, pg_url: str) -> None:
    sdir = tmp_path / "sessions"
    a, b = write_tree(sdir, 2, 3_000)
    assert cli("--sessions-dir", str(sdir)).counts["migrated"] == 2
    store = pg_store(pg_url, sdir)
    try:
        # The app changed session a on PostgreSQL after the migration...
        loaded = store.load(a)
        changed = dict(loaded.state, question="edited on PostgreSQL")
        store.write_state(
            a, changed, expected_revision=loaded.revision, new_revision=loaded.revision + 1
        )
        # ...while someone edited both files with their old timestamps, and b with a new one.
        write_state_file(sdir, a, dict(file_doc(sdir, a), question="stale file edit"))
        newer = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        write_state_file(sdir, b, dict(file_doc(sdir, b), question="new", updated_at=newer))

        result = cli("--sessions-dir", str(sdir))
        assert result.code == 0
        assert result.counts["skipped"] == 1 and result.counts["updated"] == 1
        assert result.summary["skipped"] == [str(sdir / a / "state.json")]
        assert store.load(a).state["question"] == "edited on PostgreSQL"
        assert store.load(b).state["question"] == "new"
        assert store.get_session(b).question == "new"  # metadata follows the state

        text = cli("--sessions-dir", str(sdir), json=False).out
        assert "skipped (database newer)          1" in text

        revision = store.load(a).revision
        forced = cli("--sessions-dir", str(sdir), "--force")
        assert forced.counts["updated"] == 1 and forced.counts["unchanged"] == 1
        assert store.load(a).state["question"] == "stale file edit"
        assert store.load(a).revision > revision  # revisions only grow
    finally:
        store.close()


def test_dry_run_writes_nothing(cli: Cli, mixed: MixedTree, pg_url: str) -> None:
    dry = cli("--sessions-dir", str(mixed.sessions_dir), "--dry-run")
    assert dry.summary["dry_run"] is True
    assert dry.counts["migrated"] == len(mixed.migratable)
    assert dry.counts["failed"] == len(mixed.failing)
    assert rows(pg_url, "SELECT to_regclass('session_state'), to_regclass('sessions')") == [
        (None, None)
    ]
    real = cli("--sessions-dir", str(mixed.sessions_dir))
    assert real.counts == dry.counts  # the dry run predicted exactly this

    sid = mixed.good[0]
    newer = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    write_state_file(
        mixed.sessions_dir, sid, dict(file_doc(mixed.sessions_dir, sid), updated_at=newer)
    )
    before = rows(pg_url, "SELECT * FROM session_state ORDER BY session_id")
    meta_before = rows(pg_url, "SELECT * FROM sessions ORDER BY id")
    dry = cli("--sessions-dir", str(mixed.sessions_dir), "--dry-run")
    assert dry.counts["updated"] == 1
    assert dry.counts["unchanged"] == len(mixed.migratable) - 1
    assert rows(pg_url, "SELECT * FROM session_state ORDER BY session_id") == before
    assert rows(pg_url, "SELECT * FROM sessions ORDER BY id") == meta_before
    assert (
        "dry run: nothing was written"
        in cli("--sessions-dir", str(mixed.sessions_dir), "--dry-run", json=False).out
    )


def test_verify_lists_altered_and_missing_rows(cli: Cli, mixed: MixedTree, pg_url: str) -> None:
    cli("--sessions-dir", str(mixed.sessions_dir))
    # Key order and whitespace do not matter: rewrite one file compactly, keys reversed.
    sid = mixed.good[1]
    doc = file_doc(mixed.sessions_dir, sid)
    write_state_file(mixed.sessions_dir, sid, orjson.dumps(dict(reversed(list(doc.items())))))
    clean = cli("--verify", "--sessions-dir", str(mixed.sessions_dir))
    assert clean.counts["match"] == len(mixed.migratable)
    assert clean.counts["mismatch"] == clean.counts["missing"] == 0

    altered, dropped = mixed.good[2], mixed.good[3]
    rows(
        pg_url,
        "UPDATE session_state SET state = jsonb_set(state, '{chairman_verdict}', '\"altered\"') "
        f"WHERE session_id = '{altered}'",
    )
    rows(pg_url, f"DELETE FROM session_state WHERE session_id = '{dropped}'")
    result = cli("--verify", "--sessions-dir", str(mixed.sessions_dir))
    assert result.code == 1
    assert result.summary["mismatch"] == [
        str(mixed.sessions_dir / altered / "state.json") + " (content)"
    ]
    assert result.summary["missing"] == [str(mixed.sessions_dir / dropped / "state.json")]
    assert result.counts["match"] == len(mixed.migratable) - 2
    table = cli("--verify", "--sessions-dir", str(mixed.sessions_dir), json=False).out
    assert f"mismatch:\n  {mixed.sessions_dir / altered / 'state.json'} (content)" in table


def test_export_round_trips_and_is_newer_wins(cli: Cli, tmp_path: Path, pg_url: str) -> None:
    sdir = tmp_path / "sessions"
    ids = write_tree(sdir, 3, 4_000)
    huge = "session_20251210_170000_abcdef"
    write_state_file(sdir, huge, make_state(huge, size=1_000_000, user=None, status=False))
    ids.append(huge)
    originals = {sid: (sdir / sid / "state.json").read_bytes() for sid in ids}
    cli("--sessions-dir", str(sdir))

    # Into an empty tree: every state comes back, JSON-equivalent to the original file.
    out_dir = tmp_path / "exported"
    result = cli("--export", "--sessions-dir", str(out_dir))
    assert result.code == 0 and result.counts["exported"] == len(ids)
    written = sum(p.stat().st_size for p in out_dir.rglob("state.json"))
    assert result.summary["bytes"] == written > 1_000_000  # the bytes it wrote
    for sid in ids:
        assert canonical((out_dir / sid / "state.json").read_bytes()) == canonical(originals[sid])
    assert cli("--export", "--sessions-dir", str(out_dir)).counts["unchanged"] == len(ids)

    # Work done on PostgreSQL (a state write, a progress flush) reaches the files...
    store = pg_store(pg_url, sdir)
    try:
        a, b = ids[0], ids[1]
        loaded = store.load(a)
        done_on_pg = dict(loaded.state, chairman_verdict="decided on PostgreSQL")
        store.write_state(
            a, done_on_pg, expected_revision=loaded.revision, new_revision=loaded.revision + 1
        )
        # ...except where the file is newer than the row.
        newer = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        loaded_b = store.load(b)
        store.write_state(
            b,
            dict(loaded_b.state, question="pg"),
            expected_revision=loaded_b.revision,
            new_revision=loaded_b.revision + 1,
        )
        write_state_file(sdir, b, dict(orjson.loads(originals[b]), updated_at=newer))

        # ...and a session deleted for good there stays deleted on the files.
        c = ids[2]
        store.mark_deleted(c, hard=True)

        result = cli("--export", "--sessions-dir", str(sdir))
        assert result.counts["updated"] == 2, result.summary
        assert result.counts["skipped"] == 1 and result.counts["unchanged"] == len(ids) - 3
        assert file_doc(sdir, a)["chairman_verdict"] == "decided on PostgreSQL"
        assert file_doc(sdir, c)["deleted"] is True
        assert file_doc(sdir, b)["updated_at"] == newer  # the newer file was kept
        forced = cli("--export", "--force", "--sessions-dir", str(sdir))
        assert forced.counts["updated"] == 1
        assert file_doc(sdir, b)["question"] == "pg"

        # Unsetting DATABASE_URL loses nothing: the file backend reads what PostgreSQL had.
        files = build_store(
            Settings(database_url=f"sqlite:///{tmp_path / 'fallback.db'}", sessions_dir=sdir)
        )
        files.create_schema()
        for sid in ids:
            if sid != c:
                assert canonical(files.load(sid).state) == canonical(store.load(sid).state)
        assert files.get_session(c).deleted_at is not None
        files.close()
    finally:
        store.close()
    leftovers = [p for p in sdir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []  # atomic writes leave no temp files behind


def test_export_dry_run_writes_no_file(cli: Cli, tmp_path: Path) -> None:
    sdir = tmp_path / "sessions"
    write_tree(sdir, 2, 2_000)
    cli("--sessions-dir", str(sdir))
    out_dir = tmp_path / "exported"
    result = cli("--export", "--dry-run", "--sessions-dir", str(out_dir))
    assert result.counts["exported"] == 2
    assert not out_dir.exists()
