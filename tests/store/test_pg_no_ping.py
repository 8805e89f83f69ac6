"""No ping per checkout: a connection the server dropped costs a read nothing, a write one 503.

The pool hands out connections without a round trip to check them (docs/OPERATIONS.md).
Here the server really drops the pooled connection (``pg_terminate_backend``, as a
restart or failover would): the next read is run again on a fresh connection and
succeeds; a write fails once with StoreUnavailable (never a silent loss) and the next
one succeeds; the transaction timeouts still apply to the retried read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from council_app.store import SessionRow, StoreUnavailable
from council_app.store.postgres import PostgresStore
from tests.conftest import TEST_DATABASE_URL, postgres_settings

SID = "session_20251210_160742_00c0c0"


def pooled_backend_pid(store: PostgresStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def terminate(pid: int) -> None:
    admin = sa.create_engine(TEST_DATABASE_URL)
    try:
        with admin.begin() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    finally:
        admin.dispose()


def test_dropped_connection_is_retried_for_reads_and_refused_once_for_writes(
    pg_url: str, tmp_path: Path
) -> None:
    settings = postgres_settings(pg_url, tmp_path, db_pool_size=1, db_max_overflow=0)
    store = PostgresStore(settings)
    try:
        store.create_schema()
        now = datetime.now(UTC)
        state = {"session_id": SID, "question": "q", "status": "idle"}
        store.create_session(
            SessionRow(SID, "alice", "q", "idle", "input", None, None, now, now), state, 1
        )
        assert not store.engine.pool._pre_ping  # the point of this test

        terminate(pooled_backend_pid(store))
        row = store.get_session(SID)  # the dead connection fails, the read runs again
        assert row is not None and row.user_id == "alice"
        found = store.load_hot(SID)
        assert found is not None and found[1]["status"] == "idle"
        with store._tx() as conn:  # and the retried transactions are still bounded
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() != "0"

        terminate(pooled_backend_pid(store))
        with pytest.raises(StoreUnavailable):  # a 503: nothing acknowledged, nothing written
            store.write_state(SID, {**state, "status": "x"}, expected_revision=1, new_revision=2)
        stored = store.load(SID)
        assert stored is not None and stored.revision == 1 and stored.state["status"] == "idle"
        store.write_state(SID, {**state, "status": "x"}, expected_revision=1, new_revision=2)
        stored = store.load(SID)
        assert stored is not None and stored.revision == 2 and stored.state["status"] == "x"
    finally:
        store.close()
