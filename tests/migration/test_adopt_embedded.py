"""Shape 3: the server started with DATABASE_URL unset in the old server's working
directory adopts its ``agent_council.db`` (WAL rows included) and serves every session."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from council_app.settings import Settings
from tests.api.api_helpers import built_app, services_of
from tests.concurrency import create_schemas_together
from tests.conftest import sqlite_settings
from tests.internals import store_of
from tests.migration.adoption_checks import count_served
from tests.migration.old_server_shapes import (
    ADMIN,
    add_wal_sessions,
    main_file_has,
    old_sqlite_file,
)

COUNTS: dict[str, str] = {}


def _settings(tmp_path: Path) -> Settings:
    return sqlite_settings(tmp_path, migration_admin_external_id=ADMIN)


def test_old_working_directory_is_adopted_at_start(tmp_path: Path) -> None:
    db = tmp_path / "agent_council.db"
    shape = old_sqlite_file(db, tmp_path / "sessions")
    writer = add_wal_sessions(db, shape)
    try:
        assert all(not main_file_has(db, sid) for sid in shape.wal_only)  # only in -wal
        stale_file = (
            tmp_path / "sessions" / shape_id(shape, "newer db") / "state.json"
        ).read_bytes()
        with built_app(_settings(tmp_path)) as app:
            client = app.test_client()
            served = count_served(client, shape)
            store = store_of(services_of(app))
            for sid, e in shape.deleted().items():
                row = store.get_session(sid)
                assert row is not None and row.deleted_at is not None
                assert (row.cost_usd, row.total_tokens) == (e.cost, e.tokens)
    finally:
        writer.close()
    COUNTS["embedded"] = served.line("shape 3 (embedded, old agent_council.db)")
    print(COUNTS["embedded"])
    assert served.served_with_content == len(shape.served())
    assert served.owners_right == len(shape.served())
    assert served.deleted_kept == len(shape.deleted())
    assert served.cost_kept == len(shape.served())
    # The backup copy was made through SQLite: it has the old tables and the WAL rows.
    (backup,) = tmp_path.glob("agent_council.db.pre-adoption-*.bak")
    with sqlite3.connect(backup) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM sessions")}
        assert "is_deleted" in {r[1] for r in conn.execute("PRAGMA table_info(sessions)")}
    assert set(shape.wal_only) <= ids
    report = orjson.loads((tmp_path / "agent_council.db.adoption.json").read_bytes())
    assert report["carried"] == len(shape.expect) and report["failed"] == len(shape.failed)
    assert {f["session_id"] for f in report["failures"]} == set(shape.failed)
    # The older state.json the database superseded is kept beside the new one.
    kept = tmp_path / "sessions" / shape_id(shape, "newer db") / "state.json.pre-adoption"
    assert kept.read_bytes() == stale_file


def test_second_start_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "agent_council.db"
    shape = old_sqlite_file(db, tmp_path / "sessions")
    with built_app(_settings(tmp_path)) as app:
        first = count_served(app.test_client(), shape)
    with built_app(_settings(tmp_path)) as app:
        second = count_served(app.test_client(), shape)
    assert first == second
    assert len(list(tmp_path.glob("agent_council.db.pre-adoption-*.bak"))) == 1


def shape_id(shape, verdict: str) -> str:  # type: ignore[no-untyped-def]
    return next(sid for sid, e in shape.expect.items() if e.verdict == verdict)


@pytest.fixture(autouse=True)
def _no_stray_db(tmp_path: Path) -> None:
    """Each test's old directory is its own tmp_path (nothing shared)."""


def test_workers_racing_at_start_adopt_once(tmp_path: Path) -> None:
    """gunicorn starts its workers together: the write lock lets one adopt, the others
    find our schema and carry nothing twice."""

    from council_app.store import build_store

    db = tmp_path / "agent_council.db"
    shape = old_sqlite_file(db, tmp_path / "sessions")
    stores = [build_store(_settings(tmp_path)) for _ in range(3)]
    assert create_schemas_together(stores) == []
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM sessions").fetchone()
        (legacy,) = conn.execute("SELECT count(*) FROM legacy_sessions").fetchone()
    assert count == len(shape.expect) and legacy == len(shape.expect) + len(shape.failed) - 1
    report = orjson.loads((tmp_path / "agent_council.db.adoption.json").read_bytes())
    assert report["carried"] == len(shape.expect)
    for s in stores:
        s.close()
