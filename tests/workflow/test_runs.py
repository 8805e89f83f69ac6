"""The run model in one process, both backends: hand-over on SIGTERM, cancel within 2 s,
hard delete racing a start, results held through an outage longer than the lease, and a
start while the database is down."""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from council_app import create_app
from council_app.readiness import LOCK_FILE, replay_once
from council_app.recovery import RECOVERY_DIR
from council_app.settings import Settings
from council_app.store import build_store
from council_app.store.legacy_files import write_json_atomic
from tests.conftest import TEST_DATABASE_URL, postgres_settings
from tests.tcp_proxy import TcpProxy

AGENTS = {"agents": [{"name": n, "persona": f"You are {n}."} for n in ("Ada", "Bo", "Cy")]}


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def make_app(settings: Settings, **overrides: Any) -> Flask:
    values = {**asdict(settings), "openai_api_key": None, "state_flush_interval_ms": 50}
    values.update(overrides)
    return create_app(values)


def new_session(client: Any) -> str:
    sid: str = client.post("/api/sessions", data={"question": "Durable?"}).json["session_id"]
    assert client.put(f"/api/sessions/{sid}/council", json=AGENTS).status_code == 200
    return sid


def member_states(client: Any, sid: str, step: str = "execute") -> dict[str, str]:
    members = client.get(f"/api/sessions/{sid}/status").json["members"].get(step) or {}
    return {name: m["state"] for name, m in members.items()}


def executing(client: Any) -> str:
    """A new session whose execute has every member waiting for its answer."""
    sid = new_session(client)
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
    wait_until(lambda: set(member_states(client, sid).values()) == {"thinking"})
    return sid


def test_sigterm_hands_the_run_over_at_once(backend_settings: Settings) -> None:
    """The leaving worker releases its lease; another takes over long before the lease
    (60 s here) would have run out, and finishes the run."""
    leaving = make_app(backend_settings, offline_latency_ms=60_000, run_lease_seconds=60)
    staying = None
    try:
        client = leaving.test_client()
        sid = executing(client)
        started = time.monotonic()
        leaving.extensions["council"].shutdown(timeout=5)  # what worker_exit does on SIGTERM
        assert time.monotonic() - started < 3.0  # not waiting for 60 s answers
        staying = make_app(backend_settings, offline_latency_ms=0, run_lease_seconds=60)
        other = staying.test_client()
        wait_until(lambda: other.get(f"/api/sessions/{sid}/status").json["status"] != "executing")
        status = other.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_complete", status
        assert set(member_states(other, sid).values()) == {"done"}
    finally:
        if staying is not None:
            staying.extensions["council"].shutdown(timeout=2)


def test_cancel_aborts_calls_in_flight_within_two_seconds(backend_settings: Settings) -> None:
    app = make_app(backend_settings, offline_latency_ms=60_000)
    svc = app.extensions["council"]
    try:
        client = app.test_client()
        sid = executing(client)
        started = time.monotonic()
        assert client.post(f"/api/sessions/{sid}/cancel").status_code == 202
        assert svc.workflow.join(sid, 2.0)
        assert time.monotonic() - started < 2.0
        status = client.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_error"
        assert status["execution_error"].startswith("cancelled")
        assert set(member_states(client, sid).values()) == {"cancelled"}
        assert set(status["execution_status"].values()) - {"Cancelled"} == set()
    finally:
        svc.shutdown(timeout=2)


def test_a_cancel_sent_to_another_worker_stops_the_run_within_two_seconds(
    backend_settings: Settings,
) -> None:
    """The worker holding the run hears of a cancel made elsewhere through its lease
    keeper's read of every run it holds."""
    holder = make_app(backend_settings, offline_latency_ms=60_000)
    other = make_app(backend_settings)
    try:
        client = holder.test_client()
        sid = executing(client)
        started = time.monotonic()
        assert other.test_client().post(f"/api/sessions/{sid}/cancel").status_code == 202
        assert holder.extensions["council"].workflow.join(sid, 2.0)
        assert time.monotonic() - started < 2.0
        status = client.get(f"/api/sessions/{sid}/status").json
        assert (status["status"], set(member_states(client, sid).values())) == (
            "execution_error",
            {"cancelled"},
        )
    finally:
        holder.extensions["council"].shutdown(timeout=2)
        other.extensions["council"].shutdown(timeout=2)


def test_one_lease_keeper_renews_every_run_of_the_process(backend_settings: Settings) -> None:
    """Six runs at once: one keeper thread, no thread of a run's own, and every lease
    moved forward while the members wait for their answers."""

    def keepers() -> set[threading.Thread]:  # other apps of this test process have theirs
        return {t for t in threading.enumerate() if t.name == "lease-keeper"}

    before = keepers()
    app = make_app(backend_settings, offline_latency_ms=60_000, run_lease_seconds=2)
    svc = app.extensions["council"]
    client = app.test_client()
    try:
        sids = [new_session(client) for _ in range(6)]
        for sid in sids:
            assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
        states = svc.workflow.runs.states

        def lease(sid: str) -> float:
            return float(states.hot(sid)[1]["run"]["lease_until"])

        first = {sid: lease(sid) for sid in sids}
        # renewed every lease/4 = 0.5 s: a second on, each was moved at least once
        wait_until(lambda: all(lease(sid) > first[sid] + 1 for sid in sids), timeout=10)
        assert len(keepers() - before) == 1
        names = [t.name for t in threading.enumerate()]
        assert "lease" not in names
        assert not [n for n in names if n.startswith("run-")]  # runs wait on the pool's threads
        assert all(
            client.get(f"/api/sessions/{s}/status").json["status"] == "executing" for s in sids
        )
    finally:
        svc.shutdown(timeout=2)


def test_hard_delete_and_execute_racing_exactly_one_wins(backend_settings: Settings) -> None:
    app = make_app(backend_settings, offline_latency_ms=20)
    svc = app.extensions["council"]
    sessions_dir = Path(backend_settings.sessions_dir)
    wins = {"delete": 0, "execute": 0}
    try:
        for _ in range(12):
            sid = new_session(app.test_client())
            barrier = threading.Barrier(2)
            codes: dict[str, int] = {}

            def hit(
                name: str,
                method: str,
                path: str,
                sid: str = sid,
                barrier: threading.Barrier = barrier,
                codes: dict[str, int] = codes,
            ) -> None:
                client = app.test_client()
                barrier.wait()
                codes[name] = client.open(f"/api/sessions/{sid}{path}", method=method).status_code

            threads = [
                threading.Thread(target=hit, args=("delete", "DELETE", "?hard=true")),
                threading.Thread(target=hit, args=("execute", "POST", "/execute")),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert svc.workflow.join(sid, 30)
            deleted, started = codes["delete"] == 200, codes["execute"] == 200
            assert deleted != started, codes  # exactly one of them
            if deleted:
                wins["delete"] += 1
                assert codes["execute"] in (404, 410), codes
                # No run wrote its log (prompts included) back into the removed folder.  (The
                # folder itself can briefly reappear on PostgreSQL: the state-file mirror's
                # thread may finish an older state.json write after the delete.)
                assert not (sessions_dir / sid / "logs").exists()
            else:
                wins["execute"] += 1
                assert codes["delete"] == 409, codes
                status = app.test_client().get(f"/api/sessions/{sid}/status").json
                assert status["status"] == "execution_complete"
        assert sum(wins.values()) == 12
        print(f"hard delete vs execute, 12 races: {wins}")
    finally:
        svc.shutdown(timeout=2)


# -- PostgreSQL behind a TCP proxy that an operator cuts ----------------------------------


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    target = make_url(TEST_DATABASE_URL)
    p = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    yield p
    p.close()


def proxied(pg_url: str, tmp_path: Path, proxy: TcpProxy, **overrides: Any) -> Flask:
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    settings = postgres_settings(url.render_as_string(hide_password=False), tmp_path)
    return make_app(settings, **overrides)


def test_results_held_through_an_outage_longer_than_the_lease_win(
    pg_url: str, tmp_path: Path, proxy: TcpProxy
) -> None:
    app = proxied(pg_url, tmp_path, proxy, offline_latency_ms=300, run_lease_seconds=2)
    svc = app.extensions["council"]
    client = app.test_client()
    try:
        sid = new_session(client)
        assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
        lease_until = client.get(f"/api/sessions/{sid}/status").json  # before the cut
        assert lease_until["status"] == "executing"
        proxy.cut()
        cut_at = time.time()
        wait_until(lambda: sid in svc.workflow.held)  # finished, results in memory
        wait_until(lambda: time.time() > cut_at + 2 * 2)  # the lease is long over
        proxy.restore()
        assert svc.workflow.join(sid, 30)
        status = client.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_complete", status
        results = client.get(f"/api/sessions/{sid}/results").json["execution_results"]
        assert [r["status"] for r in results] == ["success"] * 3
        logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
        assert [e["step"] for e in logs].count("execute") == 3  # nobody asked again
    finally:
        svc.shutdown(timeout=2)


def test_start_during_an_outage_answers_503_then_serves(
    pg_url: str, tmp_path: Path, proxy: TcpProxy
) -> None:
    proxy.cut()
    app = proxied(pg_url, tmp_path, proxy)  # must not raise
    svc = app.extensions["council"]
    client = app.test_client()
    try:
        assert not svc.readiness.ready
        r = client.post("/api/sessions", data={"question": "Anyone there?"})
        assert r.status_code == 503 and r.json["detail"]
        assert client.get("/api/sessions").status_code == 503
        started = time.monotonic()
        assert client.get("/api/health").status_code == 503
        assert time.monotonic() - started < 2.5
        proxy.restore()
        wait_until(lambda: svc.readiness.ready, timeout=30)  # the retry thread got there
        r = client.post("/api/sessions", data={"question": "Anyone there?"})
        assert r.status_code in (200, 201), r.json
    finally:
        svc.shutdown(timeout=2)


def test_recovery_replay_runs_in_one_process_at_a_time(backend_settings: Settings) -> None:
    store = build_store(backend_settings)
    store.create_schema()
    sessions_dir = Path(backend_settings.sessions_dir)
    record = sessions_dir / RECOVERY_DIR / "session_20251210_160742_5b86ea.json"
    write_json_atomic(record, {"session_id": record.stem})
    try:
        with open(sessions_dir / LOCK_FILE, "a+b") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another process is replaying
            assert replay_once(store, sessions_dir) == 0
            assert record.exists()
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        assert replay_once(store, sessions_dir) == 1
        assert not record.exists()
    finally:
        store.close()


def test_start_refuses_a_sessions_dir_it_cannot_write(tmp_path: Path) -> None:
    from council_app.settings import ConfigError
    from tests.conftest import sqlite_settings

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where SESSIONS_DIR should be")
    with pytest.raises(ConfigError, match="SESSIONS_DIR"):
        make_app(sqlite_settings(tmp_path, sessions_dir=blocker))


def test_a_run_past_its_deadline_stops_and_says_so(backend_settings: Settings) -> None:
    app = make_app(backend_settings, offline_latency_ms=60_000, run_deadline_seconds=1)
    svc = app.extensions["council"]
    try:
        client = app.test_client()
        sid = new_session(client)
        started = time.monotonic()
        assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
        assert svc.workflow.join(sid, 5)
        assert time.monotonic() - started < 3.0  # deadline 1 s, calls in flight abandoned
        status = client.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_error"
        assert "deadline" in status["execution_error"]
        assert set(member_states(client, sid).values()) == {"cancelled"}
    finally:
        svc.shutdown(timeout=2)
