"""Sessions of the embedded backend: progress flushed only to SQLite still migrates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from council_app.store import ProgressWrite, SessionRow, build_store
from tests.conftest import postgres_settings, sqlite_settings
from tests.migration.migration_helpers import Cli

SID = "session_20251210_160742_5b86ea"


def test_progress_kept_in_sqlite_reaches_postgres(cli: Cli, pg_url: str, tmp_path: Path) -> None:
    embedded = build_store(sqlite_settings(tmp_path))
    embedded.create_schema()
    now = datetime(2025, 12, 10, 16, 7, 42, tzinfo=UTC)
    state = {"session_id": SID, "question": "Q", "status": "executing", "x_custom": [1]}
    embedded.create_session(
        SessionRow(SID, "alice", "Q", "executing", "execute", None, None, now, now), state, 1
    )
    # Flushed after the last state.json write: lives only in SQLite's session_state.
    embedded.write_progress(
        [ProgressWrite(SID, {"execution_status": {"A": "Done"}, "progress": {"execution": 50}}, 2)]
    )
    embedded.close()
    on_disk = json.loads((tmp_path / "sessions" / SID / "state.json").read_text())
    assert "execution_status" not in on_disk

    result = cli(
        "--sessions-dir",
        str(tmp_path / "sessions"),
        "--sqlite-url",
        f"sqlite:///{tmp_path / 'agent_council.db'}",
    )
    assert result.code == 0, result.err
    target = build_store(postgres_settings(pg_url, tmp_path))
    migrated = target.load(SID)
    assert migrated is not None
    assert migrated.state["execution_status"] == {"A": "Done"}
    assert migrated.state["progress"] == {"execution": 50}
    assert migrated.state["x_custom"] == [1]
    assert target.get_session(SID).user_id == "alice"  # type: ignore[union-attr]
    again = cli(
        "--sessions-dir",
        str(tmp_path / "sessions"),
        "--sqlite-url",
        f"sqlite:///{tmp_path / 'agent_council.db'}",
    )
    assert again.counts["unchanged"] == 1 and again.counts["updated"] == 0
    target.close()
