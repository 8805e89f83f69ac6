"""PostgreSQL bounded in time: per-transaction timeouts (SET LOCAL, nothing leaks to the
session) and a client-side deadline that ends every wait on a server that stopped answering
(TCP up, nothing forwarded: ``TcpProxy.hang``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from council_app.store import SessionRow, StoreUnavailable
from council_app.store.postgres import PostgresStore
from tests.conftest import TEST_DATABASE_URL, postgres_settings
from tests.tcp_proxy import TcpProxy

SID = "session_20251210_160742_00b0b0"
BOUND_S = 15.0  # a hung call must return at all; far above the ~1.3 s deadline used here


def make_store(url: str, tmp_path: Path, **overrides: Any) -> PostgresStore:
    values: dict[str, Any] = {"db_statement_timeout_ms": 300, "db_lock_timeout_ms": 200}
    values.update(overrides)
    store = PostgresStore(postgres_settings(url, tmp_path, **values))
    store.create_schema()
    return store


def seed(store: PostgresStore, sid: str = SID) -> None:
    now = datetime.now(UTC)
    row = SessionRow(sid, "alice", "Q", "idle", "input", None, None, now, now)
    store.create_session(row, {"session_id": sid, "question": "Q"}, 1)


def returns_within(fn: Callable[[], Any], limit: float = BOUND_S) -> BaseException | None:
    """Run ``fn`` in a thread; fail the test if it is still waiting after ``limit``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still waiting after {limit} s"
    return outcome[0]


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    target = make_url(TEST_DATABASE_URL)
    p = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    yield p
    p.close()


@pytest.fixture
def proxied(pg_url: str, tmp_path: Path, proxy: TcpProxy) -> Iterator[PostgresStore]:
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    store = make_store(url.render_as_string(hide_password=False), tmp_path)
    yield store
    store.close()


def test_timeouts_are_set_per_transaction_and_do_not_leak(pg_url, tmp_path) -> None:
    store = make_store(pg_url, tmp_path, db_pool_size=1, db_max_overflow=0)
    try:
        with store._tx() as conn:
            inside = (
                conn.execute(text("SHOW statement_timeout")).scalar(),
                conn.execute(text("SHOW lock_timeout")).scalar(),
            )
        with store.engine.connect() as conn:  # the same (only) pooled session, outside _tx
            outside = conn.execute(text("SHOW statement_timeout")).scalar()
        assert inside == ("300ms", "200ms")
        assert outside == "0"  # SET LOCAL ended with the transaction: PgBouncer-safe
    finally:
        store.close()


def test_a_slow_statement_is_cancelled_by_the_server(pg_url, tmp_path) -> None:
    store = make_store(pg_url, tmp_path)
    try:
        with pytest.raises(StoreUnavailable, match="statement timeout"), store._tx() as conn:
            conn.execute(text("SELECT pg_sleep(30)"))
        assert store._breaker.opened == 0  # the server answered: not a hang
        store.ping()
    finally:
        store.close()


def test_a_held_row_lock_gives_up_at_lock_timeout(pg_url, tmp_path) -> None:
    store = make_store(pg_url, tmp_path)
    seed(store)
    try:
        with store.engine.connect() as holder:
            holder.execute(
                text("SELECT 1 FROM session_state WHERE session_id = :s FOR UPDATE"), {"s": SID}
            )
            with pytest.raises(StoreUnavailable, match="lock timeout"):
                store.write_state(SID, {"session_id": SID}, expected_revision=1, new_revision=2)
            holder.rollback()
        store.write_state(SID, {"session_id": SID}, expected_revision=1, new_revision=2)
    finally:
        store.close()


def test_hung_server_bounds_reads_writes_and_connects(proxied, proxy) -> None:
    store = proxied
    seed(store)
    store.load_hot(SID)  # a pooled connection exists
    proxy.hang()
    first = returns_within(lambda: store.load_hot(SID))
    # (pre-ping or the query hits the deadline, then the reconnect does: either says so)
    assert isinstance(first, StoreUnavailable) and "did not finish" in str(first)
    assert store._breaker.opened == 1
    # Known hung: the next calls fail at once instead of each waiting out a deadline.
    later = [returns_within(lambda: store.load(SID)) for _ in range(20)]
    assert all(isinstance(e, StoreUnavailable) and "not asking again" in str(e) for e in later)
    assert store._breaker.opened == 1
    # Health's own connection has its own short deadline and never waits for the pool.
    ping = returns_within(store.ping, 3.0)
    assert isinstance(ping, StoreUnavailable)
    proxy.restore()
    assert returns_within(store.ping) is None  # health's success closes the breaker
    assert not store._breaker.is_open
    assert store.load(SID) is not None


def test_connect_to_a_hung_server_gives_up(pg_url, tmp_path, proxy) -> None:
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    proxy.hang()
    store = PostgresStore(
        postgres_settings(
            url.render_as_string(hide_password=False), tmp_path, db_connect_timeout_s=1
        )
    )
    try:
        error = returns_within(lambda: store.get_session(SID))
        assert isinstance(error, StoreUnavailable) and "connecting" in str(error)
    finally:
        store.close()
