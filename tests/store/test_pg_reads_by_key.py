"""Lookups by key run in autocommit on PostgreSQL (one round trip: no BEGIN, no COMMIT),
and the pooled connection they used is transactional again for the next writer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from council_app.store import SessionRow
from council_app.store.postgres import PostgresStore
from tests.conftest import postgres_settings

SID = "session_20251210_160742_00d0d0"


def test_reads_by_key_leave_the_pooled_connection_transactional(
    pg_url: str, tmp_path: Path
) -> None:
    # One pooled connection: every read below and the transaction after it share it.
    settings = postgres_settings(pg_url, tmp_path, db_pool_size=1, db_max_overflow=0)
    store = PostgresStore(settings)
    try:
        store.create_schema()
        now = datetime.now(UTC)
        state = {"session_id": SID, "question": "q", "status": "idle", "final_verdict": "v"}
        row = SessionRow(SID, "alice", "q", "idle", "input", None, None, now, now)
        store.create_session(row, state, 1)

        seen: list[bool] = []
        with store._by_key() as conn:
            seen.append(conn.connection.dbapi_connection.autocommit)  # type: ignore[union-attr]
            first = conn.execute(sa.text("SELECT txid_current()")).scalar_one()
            second = conn.execute(sa.text("SELECT txid_current()")).scalar_one()
        assert seen == [True]
        assert first != second  # each statement its own transaction: nothing held open

        assert store.get_session(SID) is not None
        assert store.load_hot(SID) is not None
        loaded = store.load(SID)
        assert loaded is not None and loaded.state["status"] == "idle"
        view = store.read_view(SID, ("status",), ("final_verdict",))
        assert view is not None and view.raw["final_verdict"] == '"v"'

        with store._tx() as conn:
            assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
            a = conn.execute(sa.text("SELECT txid_current()")).scalar_one()
            b = conn.execute(sa.text("SELECT txid_current()")).scalar_one()
            assert a == b  # one transaction: a compare-and-set write stays atomic
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() != "0"
    finally:
        store.close()
