"""Nothing lost, nothing stuck: database outages, exit while down, expired leases, cancel."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from council_app import create_app
from council_app.recovery import RECOVERY_DIR
from council_app.store import build_store
from tests.conftest import TEST_DATABASE_URL, postgres_settings
from tests.tcp_proxy import TcpProxy


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll a condition with a deadline (the condition is the synchronisation)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    target = make_url(TEST_DATABASE_URL)
    p = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    yield p
    p.close()


def proxied_app(pg_url: str, tmp_path: Path, proxy: TcpProxy, **overrides: object) -> Flask:
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    settings = postgres_settings(url.render_as_string(hide_password=False), tmp_path)
    values = {**asdict(settings), "openai_api_key": None, "state_flush_interval_ms": 50}
    values.update(overrides)
    return create_app(values)


def start_session(client, *, execute: bool = True) -> str:
    sid = client.post("/api/sessions", data={"question": "How do we survive outages?"}).json[
        "session_id"
    ]
    assert client.post(f"/api/sessions/{sid}/build_council").status_code == 200
    if execute:
        assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
    return sid


def test_run_finishes_after_database_outage(pg_url, tmp_path, proxy) -> None:
    app = proxied_app(pg_url, tmp_path, proxy, offline_latency_ms=150, council_max_parallel=2)
    svc = app.extensions["council"]
    client = app.test_client()
    try:
        sid = start_session(client)
        proxy.cut()
        started = time.monotonic()
        r = client.get(f"/api/sessions/{sid}/status")
        assert r.status_code == 503 and r.json["detail"]
        assert time.monotonic() - started < 2.5
        assert client.get("/api/health").status_code == 503
        # The agents keep working; their results are held in memory until the DB is back.
        wait_until(lambda: sid in svc.workflow.held)
        assert svc.states.pending_sessions >= 1 or svc.states.stats.failed_flushes >= 1
        proxy.restore()
        assert svc.workflow.join(sid, 30)
        assert svc.states.flush(10)
        status = client.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_complete"
        assert status["progress"]["execution"] == 100
        assert set(v for k, v in status["execution_status"].items() if k != "ALL") == {"Done"}
    finally:
        svc.shutdown(timeout=2)


def test_exit_while_database_down_is_recovered_on_next_start(pg_url, tmp_path, proxy) -> None:
    app = proxied_app(pg_url, tmp_path, proxy, offline_latency_ms=100, council_max_parallel=3)
    svc = app.extensions["council"]
    client = app.test_client()
    sid = start_session(client)
    other = start_session(client, execute=False)
    proxy.cut()
    svc.states.progress(other, {"progress": {"execution": 33}})  # accepted while down
    wait_until(lambda: sid in svc.workflow.held)
    assert svc.shutdown(timeout=1) is False  # could not reach the database...
    recovery_files = sorted(p.name for p in (tmp_path / "sessions" / RECOVERY_DIR).iterdir())
    assert recovery_files == sorted([f"{sid}.json", f"{other}.json"])  # ...so kept on disk
    assert (tmp_path / "sessions" / sid / "state.json").exists()

    proxy.restore()
    app2 = proxied_app(pg_url, tmp_path, proxy)
    try:
        client2 = app2.test_client()
        status = client2.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_complete"
        results = client2.get(f"/api/sessions/{sid}/results").json
        assert all(r["status"] == "success" for r in results["execution_results"])
        assert client2.get(f"/api/sessions/{other}/status").json["progress"]["execution"] == 33
        assert not list((tmp_path / "sessions" / RECOVERY_DIR).iterdir())
    finally:
        app2.extensions["council"].shutdown(timeout=2)


def _plant_dead_run(svc, sid: str, status: str, kind: str, **run: object) -> None:
    """As if another worker started ``kind`` and died: its lease ran out long ago."""
    store = build_store(svc.settings)
    try:
        stored = store.load(sid)
        doc = {
            **stored.state,
            "status": status,
            "current_step": kind,
            "run": {"id": "dead", "kind": kind, "owner": "gone:1", "lease_until": 1.0, **run},
        }
        store.write_state(
            sid, doc, expected_revision=stored.revision, new_revision=svc.clock_next()
        )
    finally:
        store.close()


def test_expired_lease_is_taken_over_and_finishes_without_a_client(app, client, svc) -> None:
    sid = start_session(client, execute=False)
    _plant_dead_run(svc, sid, "executing", "execute", root="root-of-the-dead-run")
    svc.workflow.sweep_expired()  # the sweeper thread would do it within lease / 4
    assert svc.workflow.join(sid, 30)
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["status"] == "execution_complete"
    assert status["execution_error"] is None
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200  # already done


def test_sweeper_takes_over_dead_runs_nobody_polls(app, client, svc) -> None:
    sid = start_session(client)
    assert svc.workflow.join(sid, 30)
    _plant_dead_run(svc, sid, "reviewing", "review", root="root-of-a-dead-review")
    store = build_store(svc.settings)
    try:
        assert store.running_sessions() == [sid]
        assert svc.workflow.sweep_expired() + svc.workflow.sweep_expired() <= 1
        assert svc.workflow.join(sid, 30)
        assert store.running_sessions() == []
        row = store.get_session(sid)
        assert row is not None and row.status == "review_complete"
        assert store.load(sid).state["peer_reviews"]
    finally:
        store.close()


def test_a_running_status_no_run_owns_is_marked_interrupted_without_llm_calls(
    app, client, svc
) -> None:
    """An older server's crash or a migrated document: nothing says it is recent, so the
    sweeper makes no LLM call for it; the user starts the step again."""
    sid = start_session(client)
    assert svc.workflow.join(sid, 30)
    calls = len(client.get(f"/api/sessions/{sid}/logs").json["logs"])
    store = build_store(svc.settings)
    try:
        stored = store.load(sid)
        doc = {**stored.state, "status": "reviewing", "current_step": "review", "run": None}
        store.write_state(
            sid, doc, expected_revision=stored.revision, new_revision=svc.clock_next()
        )
        assert svc.workflow.sweep_expired() == 0
        assert store.running_sessions() == []
        status = client.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "review_error"
        assert status["review_error"].startswith("interrupted")
        assert len(client.get(f"/api/sessions/{sid}/logs").json["logs"]) == calls
        assert client.post(f"/api/sessions/{sid}/peer_review").status_code == 200
        assert svc.workflow.join(sid, 30)
        assert client.get(f"/api/sessions/{sid}/status").json["status"] == "review_complete"
    finally:
        store.close()


def test_cancel_stops_at_next_agent_boundary(backend_settings) -> None:
    app = create_app(
        {
            **asdict(backend_settings),
            "openai_api_key": None,
            "offline_latency_ms": 300,
            "council_max_parallel": 1,
        }
    )
    svc = app.extensions["council"]
    client = app.test_client()
    try:
        sid = start_session(client)
        agents = client.get(f"/api/sessions/{sid}/summary").json["council_config"]["agents"]
        r = client.post(f"/api/sessions/{sid}/cancel")
        assert r.status_code == 202
        assert svc.workflow.join(sid, 30)
        status = client.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_error"
        assert status["execution_error"].startswith("cancelled")
        words = [status["execution_status"][a["name"]] for a in agents]
        assert "Cancelled" in words  # later agents never started
        assert client.post(f"/api/sessions/{sid}/cancel").status_code == 409  # nothing running
        # A cancelled run starts again without force (it is not "already executed").
        assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
        assert svc.workflow.join(sid, 30)
        assert client.get(f"/api/sessions/{sid}/status").json["status"] == "execution_complete"
    finally:
        svc.shutdown(timeout=2)


def test_a_lone_agent_never_reviews_its_own_proposal(client, svc) -> None:
    sid = start_session(client, execute=False)
    solo = {"agents": [{"name": "Solo", "persona": "You answer alone."}]}
    assert client.put(f"/api/sessions/{sid}/council", json=solo).status_code == 200
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
    assert svc.workflow.join(sid, 30)
    assert client.post(f"/api/sessions/{sid}/peer_review").status_code == 200
    assert svc.workflow.join(sid, 30)
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["review_status"] == {"Solo": "Skipped"}
    assert status["status"] == "review_error"
    reviews = client.get(f"/api/sessions/{sid}/reviews").json
    assert reviews["reviews"][0]["skipped"] is True
    assert reviews["aggregated_scores"] == {}
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert [e["step"] for e in logs].count("review") == 0  # no model call was made
