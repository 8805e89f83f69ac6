"""The write-behind flusher against real backends: coalescing, batching, ordering, outages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from council_app.flusher import ProgressFlusher
from council_app.revisions import RevisionClock
from council_app.settings import Settings
from council_app.state import SessionStates
from council_app.store import SessionRow, StateStore, StoreUnavailable, build_store
from tests.conftest import TEST_DATABASE_URL, postgres_settings
from tests.tcp_proxy import TcpProxy

NEVER = 3600.0  # an interval that never elapses in a test: flushes happen when we say so


def sid(i: int) -> str:
    return f"session_20251210_160742_{i:06x}"


def seed(store: StateStore, clock: RevisionClock, n: int) -> list[str]:
    ids = [sid(i) for i in range(n)]
    now = datetime.now(UTC)
    for s in ids:
        row = SessionRow(s, "alice", "Q", "executing", "execute", None, None, now, now)
        store.create_session(row, {"session_id": s, "question": "Q"}, clock.next())
    return ids


class Counting:
    """Counts write_progress calls and SQL statements reaching the database."""

    def __init__(self, store: StateStore) -> None:
        self.calls = 0
        self.statements: list[str] = []
        original = store.write_progress

        def counted(writes):  # type: ignore[no-untyped-def]
            self.calls += 1
            return original(writes)

        store.write_progress = counted  # type: ignore[method-assign]
        sa.event.listen(store.engine, "before_cursor_execute", self._on_sql)  # type: ignore[attr-defined]

    def _on_sql(self, conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        self.statements.append(statement)


@pytest.fixture
def parts(store: StateStore) -> Iterator[tuple[StateStore, ProgressFlusher, SessionStates]]:
    clock = RevisionClock()
    flusher = ProgressFlusher(store, NEVER, clock)
    yield store, flusher, SessionStates(store, flusher, clock)
    flusher.stop(timeout=5)


def test_thousand_updates_in_one_interval_make_one_write(parts) -> None:
    store, flusher, states = parts
    (s,) = seed(store, flusher.clock, 1)
    counter = Counting(store)
    for i in range(1000):
        states.progress(s, {"execution_status": {"A": f"step {i}"}, "progress": {"execution": i}})
    assert counter.calls == 0  # nothing written yet: accepted in memory
    assert flusher.flush(timeout=5)
    assert counter.calls == 1
    loaded = store.load(s)
    assert loaded is not None
    assert loaded.state["execution_status"] == {"A": "step 999"}
    assert loaded.state["progress"] == {"execution": 999}
    assert flusher.stats.updates_accepted == 1000 and flusher.stats.rows_written == 1


def test_two_hundred_sessions_flush_in_one_statement(parts) -> None:
    store, flusher, states = parts
    ids = seed(store, flusher.clock, 200)
    for i, s in enumerate(ids):
        states.progress(s, {"progress": {"execution": i % 101}})
    counter = Counting(store)
    assert flusher.flush(timeout=5)
    assert counter.calls == 1
    writes = [st for st in counter.statements if "session_state" in st]
    if store.backend == "postgresql":
        assert len(counter.statements) == 1, counter.statements  # one round trip in all
    else:
        # SQLite: one transaction; its progress UPDATE is a single executemany.
        assert sum(1 for st in writes if st.lstrip().upper().startswith("UPDATE")) == 1
    assert all(store.load(s).state["progress"]["execution"] == i % 101 for i, s in enumerate(ids))


def test_reads_in_this_process_see_pending_progress(parts) -> None:
    store, _flusher, states = parts
    (s,) = seed(store, _flusher.clock, 1)
    states.progress(s, {"execution_status": {"A": "Thinking..."}})
    assert store.load(s).state.get("execution_status") is None  # not in the DB yet
    assert states.load(s).state["execution_status"] == {"A": "Thinking..."}
    assert states.hot(s)[1]["execution_status"] == {"A": "Thinking..."}


def test_a_flush_landing_during_a_read_does_not_hide_this_process_s_write(parts) -> None:
    """The read is answered before the flush commits, and the flush is over before the
    overlay is looked at: neither holds the write unless the read is done again."""
    store, flusher, states = parts
    (s,) = seed(store, flusher.clock, 1)
    states.progress(s, {"execution_status": {"A": "Thinking..."}})
    reads = {"load": store.load, "load_hot": store.load_hot}

    def flushing_after(name: str):  # type: ignore[no-untyped-def]
        def read(*args):  # type: ignore[no-untyped-def]
            found = reads[name](*args)
            flusher.flush(timeout=5)  # lands between this read and the overlay
            return found

        return read

    store.load = flushing_after("load")  # type: ignore[method-assign]
    store.load_hot = flushing_after("load_hot")  # type: ignore[method-assign]
    assert states.hot(s)[1]["execution_status"] == {"A": "Thinking..."}
    states.progress(s, {"execution_status": {"A": "Done"}})
    assert states.load(s).state["execution_status"] == {"A": "Done"}
    assert flusher.stats.rows_written == 2  # each read did race a landed flush


def test_progress_an_immediate_write_took_stays_visible_until_it_is_stored(parts) -> None:
    store, flusher, states = parts
    (s,) = seed(store, flusher.clock, 1)
    states.progress(s, {"execution_status": {"A": "Thinking..."}})
    seen_during_write: list[object] = []
    write_state = store.write_state

    def slow_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen_during_write.append(states.hot(s)[1].get("execution_status"))
        return write_state(*args, **kwargs)

    store.write_state = slow_write  # type: ignore[method-assign]

    def finish(state: dict) -> None:
        state["status"] = "execution_complete"

    states.update(s, finish)
    assert seen_during_write == [{"A": "Thinking..."}]
    assert states.hot(s)[1]["execution_status"] == {"A": "Thinking..."}  # now from the DB
    assert flusher.peek(s) is None


def test_immediate_write_folds_pending_progress_in_order(parts) -> None:
    store, flusher, states = parts
    (s,) = seed(store, flusher.clock, 1)
    states.progress(s, {"execution_status": {"A": "Done"}})

    def finish(state: dict) -> None:
        state["status"] = "execution_complete"

    states.update(s, finish)
    loaded = store.load(s)
    assert loaded.state["execution_status"] == {"A": "Done"}
    assert loaded.state["status"] == "execution_complete"
    assert flusher.pending_sessions == 0
    assert flusher.flush(timeout=5)
    assert flusher.stats.stale_rejected == 0


def test_stale_revision_is_rejected_and_counted(parts) -> None:
    store, flusher, states = parts
    (s,) = seed(store, flusher.clock, 1)
    states.progress(s, {"execution_status": {"A": "Queued"}})  # accepted first...
    other = RevisionClock()  # ...another process writes a newer state meanwhile
    stored = store.load(s)
    store.write_state(
        s,
        {**stored.state, "execution_status": {"A": "Done"}},
        expected_revision=stored.revision,
        new_revision=other.next() + 10_000_000,
    )
    assert flusher.flush(timeout=5)
    assert flusher.stats.stale_rejected == 1
    assert store.load(s).state["execution_status"] == {"A": "Done"}


def test_flush_on_stop_writes_what_is_pending(parts) -> None:
    store, flusher, states = parts
    (s,) = seed(store, flusher.clock, 1)
    states.progress(s, {"progress": {"execution": 42}})
    assert flusher.stop(timeout=5)
    assert store.load(s).state["progress"] == {"execution": 42}


def test_thread_restarts_in_forked_child(parts) -> None:
    store, flusher, states = parts
    ids = seed(store, flusher.clock, 2)
    states.progress(ids[0], {"progress": {"execution": 1}})  # starts the parent's thread
    parent_thread = flusher._thread
    assert parent_thread is not None and parent_thread.is_alive()
    pid = os.fork()
    if pid == 0:  # child: must get its own thread and its own connections
        code = 1
        try:
            states.progress(ids[1], {"progress": {"execution": 7}})
            child_thread = flusher._thread
            alive = child_thread is not None and child_thread.is_alive()
            fresh = child_thread is not parent_thread
            parent_pending_dropped = flusher.peek(ids[0]) is None
            if alive and fresh and parent_pending_dropped and flusher.flush(timeout=10):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.load(ids[1]).state["progress"] == {"execution": 7}
    assert flusher.flush(timeout=5)
    assert store.load(ids[0]).state["progress"] == {"execution": 1}


def test_database_unreachable_then_back_loses_nothing(pg_url: str, tmp_path, caplog) -> None:
    from sqlalchemy.engine import make_url

    target = make_url(TEST_DATABASE_URL)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    settings: Settings = postgres_settings(url.render_as_string(hide_password=False), tmp_path)
    store = build_store(settings)
    store.create_schema()
    clock = RevisionClock()
    flusher = ProgressFlusher(store, NEVER, clock)
    states = SessionStates(store, flusher, clock)
    try:
        ids = seed(store, clock, 3)
        proxy.cut()
        for round_ in range(5):  # several intervals' worth of updates, each flush failing
            for i, s in enumerate(ids):
                states.progress(s, {"execution_status": {"A": f"r{round_}"}, "n": {str(i): round_}})
            assert flusher.flush() is False
        assert flusher.stats.failed_flushes == 5
        assert flusher.stats.last_error
        failures = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(failures) == 5
        assert all(m.startswith("Warning: batched update failed") for m in failures)
        assert all("PostgreSQL unavailable" in m for m in failures)  # names the error
        assert flusher.pending_sessions == 3
        with pytest.raises(StoreUnavailable):  # reads say so; progress stays held in memory
            states.hot(ids[0])
        proxy.restore()
        assert flusher.flush(timeout=10)
        for i, s in enumerate(ids):
            loaded = store.load(s)
            assert loaded.state["execution_status"] == {"A": "r4"}
            assert loaded.state["n"] == {str(i): 4}
        assert flusher.pending_sessions == 0
    finally:
        flusher.stop(timeout=1)
        store.close()
        proxy.close()
