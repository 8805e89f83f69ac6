"""Shapes 1 and 2 of the old server's deployments, moved to PostgreSQL by migrate_state.py
and then served by the app: counted in (the old database and its files) against out (what
each owner gets through the API)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from council_app.migration import source
from council_app.migration.cli import main
from council_app.store.postgres import PostgresStore
from council_app.store.schema_versions import SchemaNotUsable, SchemaState, check
from tests.api.api_helpers import built_app, services_of
from tests.conftest import postgres_settings
from tests.internals import store_of
from tests.migration.adoption_checks import Served, count_served
from tests.migration.migration_helpers import CliResult
from tests.migration.old_server_shapes import (
    ADMIN,
    OldShape,
    add_wal_sessions,
    build_old_server,
    main_file_has,
    old_sqlite_file,
)

SOURCE_KIND = {"database": (source.FROM_DB, source.FROM_DB_NEWER),
               "state.json": (source.FROM_FILE, source.FROM_FILE_NEWER)}  # fmt: skip


def run(pg_url: str, *argv: str, json: bool = True) -> CliResult:
    env = {"DATABASE_URL": pg_url, "MIGRATION_ADMIN_EXTERNAL_ID": ADMIN}
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--json"] if json else list(argv), env, stdout=out, stderr=err)
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_carried(result: CliResult, shape: OldShape) -> None:
    """Exit 1 for the session with no state; every other one migrated from the right source."""
    assert result.code == 1, result.err
    counts = result.counts
    assert counts["migrated"] == len(shape.expect), result.summary
    assert counts["failed"] == len(shape.failed)
    reasons = {f["session_id"]: f["reason"] for f in result.summary["failures"]}
    for sid, words in shape.failed.items():
        assert words in reasons[sid]
    for sid, e in shape.expect.items():
        assert result.summary["source_of"][sid] in SOURCE_KIND[e.source], sid


def serve(pg_url: str, tmp_path: Path, shape: OldShape) -> Served:
    settings = postgres_settings(pg_url, tmp_path / "served", state_file_mirror=False)
    with built_app(settings) as app:
        served = count_served(app.test_client(), shape)
        store = store_of(services_of(app))
        for sid, e in shape.deleted().items():
            row = store.get_session(sid)
            assert row is not None and row.deleted_at is not None
            assert (row.cost_usd, row.total_tokens) == (e.cost, e.tokens)
    assert served.served_with_content == len(shape.served())
    assert served.owners_right == len(shape.served())
    assert served.deleted_kept == len(shape.deleted())
    assert served.cost_kept == len(shape.served())
    return served


def _digest(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_file_with_wal_rows_to_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    db = old_dir / "agent_council.db"
    shape = old_sqlite_file(db, old_dir / "sessions")
    writer = add_wal_sessions(db, shape)  # open: its commits stay in agent_council.db-wal
    try:
        assert not any(main_file_has(db, sid) for sid in shape.wal_only)
        before = {p: _digest(p) for p in (db, Path(f"{db}-wal"))}
        files_before = {p: _digest(p) for p in (old_dir / "sessions").rglob("*.json")}
        monkeypatch.chdir(old_dir)  # the runbook: run in the old server's directory
        result = run(pg_url)
        assert_carried(result, shape)
        assert set(shape.wal_only) <= set(result.summary["source_of"])
        # Read through SQLite only: neither the file nor its WAL was written.
        assert {p: _digest(p) for p in before} == before
        assert {p: _digest(p) for p in files_before} == files_before
    finally:
        writer.close()
    served = serve(pg_url, tmp_path, shape)
    print(served.line("shape 1 (old SQLite + WAL -> PostgreSQL)"))

    # --verify compares content, owner, deletion and cost with every source.
    verify = run(
        pg_url, "--verify", "--legacy-db", str(db), "--sessions-dir", str(old_dir / "sessions")
    )
    assert verify.counts["match"] == len(shape.expect) and verify.counts["mismatch"] == 0
    sid = next(iter(shape.served()))
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE sessions SET user_id = 'mallory', cost = 99 WHERE id = :i"), {"i": sid}
        )
    engine.dispose()
    verify = run(
        pg_url, "--verify", "--legacy-db", str(db), "--sessions-dir", str(old_dir / "sessions")
    )
    assert verify.code == 1
    assert next(m for m in verify.summary["mismatch"] if sid in m).endswith("(owner, cost)")


def test_old_postgresql_is_refused_at_start_then_upgraded_in_place(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(pg_url)
    shape = build_old_server(engine, tmp_path / "sessions")
    with engine.connect() as conn:
        assert check(conn).state is SchemaState.LEGACY
    # Start-up refuses it, naming the command (the one line wsgi prints before exit 3).
    with (
        pytest.raises(SchemaNotUsable, match=r"migrate_state\.py"),
        built_app(postgres_settings(pg_url, tmp_path / "served")),
    ):
        pass

    monkeypatch.chdir(tmp_path)  # no agent_council.db here: the tables are the source
    dry = run(pg_url, "--sessions-dir", str(tmp_path / "sessions"), "--dry-run")
    assert dry.counts["migrated"] == len(shape.expect), dry.summary
    with engine.connect() as conn:
        assert check(conn).state is SchemaState.LEGACY  # a dry run changes nothing
    result = run(pg_url, "--sessions-dir", str(tmp_path / "sessions"))
    assert_carried(result, shape)
    assert any("moved aside" in n for n in result.summary["notes"])
    with engine.connect() as conn:  # the old GIN index went aside with its table
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("legacy_session_state")}
        assert "legacy_ix_session_state_state_gin" in indexes
    served = serve(pg_url, tmp_path, shape)
    print(served.line("shape 2 (old PostgreSQL upgraded in place)"))

    # A rerun is a no-op: nothing written, everything unchanged.
    query = sa.text("SELECT session_id, revision, updated_at FROM session_state ORDER BY 1")
    with engine.connect() as conn:
        stored = conn.execute(query).all()
    again = run(pg_url, "--sessions-dir", str(tmp_path / "sessions"))
    assert again.counts["unchanged"] == len(shape.expect) and again.counts["migrated"] == 0
    with engine.connect() as conn:
        assert conn.execute(query).all() == stored
        legacy = conn.execute(sa.text("SELECT count(*) FROM legacy_sessions")).scalar()
    assert legacy == len(shape.expect) + len(shape.failed) - 1  # all but the file-only one

    # --drop-legacy drops nothing while a session failed.
    kept = run(pg_url, "--sessions-dir", str(tmp_path / "sessions"), "--drop-legacy")
    assert any("kept" in n for n in kept.summary["notes"])
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("legacy_session_state")
    engine.dispose()


def test_drop_legacy_after_a_clean_run(pg_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(pg_url)
    shape = build_old_server(engine, tmp_path / "sessions")
    with engine.begin() as conn:  # the one session without state: give it its state
        for sid in shape.failed:
            conn.execute(
                sa.text("INSERT INTO session_state VALUES (:i, CAST(:s AS jsonb), now())"),
                {"i": sid, "s": orjson.dumps({"session_id": sid, "question": "q"}).decode()},
            )
    result = run(pg_url, "--sessions-dir", str(tmp_path / "sessions"), "--drop-legacy")
    assert result.code == 0, result.summary
    assert any("dropped legacy_session_state" in n for n in result.summary["notes"])
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert not {"legacy_users", "legacy_sessions", "legacy_session_state"} & names
    store = PostgresStore(postgres_settings(pg_url, tmp_path))
    try:
        assert store.get_session(next(iter(shape.failed))) is not None
    finally:
        store.close()
    engine.dispose()


@pytest.mark.slow
def test_runbook_script_runs_the_same_tool(pg_url: str, tmp_path: Path) -> None:
    """`python scripts/migrate_state_json_to_db.py` in the old server's directory."""
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    shape = old_sqlite_file(old_dir / "agent_council.db", old_dir / "sessions")
    script = Path(__file__).resolve().parents[2] / "scripts" / "migrate_state_json_to_db.py"
    env = {**os.environ, "DATABASE_URL": pg_url, "MIGRATION_ADMIN_EXTERNAL_ID": ADMIN}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, str(script), "--json", "--quiet"],
        cwd=old_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # the session with no state anywhere
    assert_carried(CliResult(done.returncode, done.stdout, done.stderr), shape)


def test_in_place_run_says_a_default_file_was_not_read(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(pg_url)
    build_old_server(engine, tmp_path / "sessions")
    engine.dispose()
    old_sqlite_file(tmp_path / "agent_council.db", tmp_path / "other-sessions")
    monkeypatch.chdir(tmp_path)
    result = run(pg_url, "--sessions-dir", str(tmp_path / "sessions"))
    notes = " ".join(result.summary["notes"])
    assert "agent_council.db was not read" in notes and "--legacy-db" in notes
