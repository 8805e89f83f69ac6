"""Real gunicorn on PostgreSQL: concurrent start-up, graceful SIGTERM, metrics across workers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from .live_server import LiveServer, server_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def table_names(pg_url: str) -> list[str]:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return sorted(
                conn.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema()"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_four_workers_start_at_once_on_an_empty_schema(
    pg_url: str, tmp_path: Path, preload: bool
) -> None:
    assert table_names(pg_url) == []
    env = server_env(tmp_path, pg_url, WEB_CONCURRENCY="4")
    with LiveServer(tmp_path, env, workers=4, preload=preload) as server:
        # Without --preload every worker builds the app (and races to create the schema);
        # with it the master builds it once and forks.
        server.start(ready_lines=1 if preload else 4)
        server.wait_for_log("Booting worker", 4, deadline=_in(30))
        for _ in range(8):
            status, headers, body = server.request("GET", "/api/health")
            assert status == 200, body
            assert body["database"]["ok"] is True and body["backend"] == "postgresql"
            assert headers.get("x-request-id")
        sid = server.create_session()
        status, _, body = server.request("GET", f"/api/sessions/{sid}/status")
        assert status == 200 and body["status"] == "idle"
        assert server.stop() == 0
    tables = table_names(pg_url)
    assert "sessions" in tables and "session_state" in tables
    assert len(tables) == len(set(tables))
    assert server.error_lines() == []
    assert "Shutting down: Master" in server.log()


def _in(seconds: float) -> float:
    return time.monotonic() + seconds


def test_sigterm_writes_every_accepted_progress_update(pg_url: str, tmp_path: Path) -> None:
    env = server_env(
        tmp_path, pg_url, WEB_CONCURRENCY="2", PROGRESS_API="1", STATE_FLUSH_INTERVAL_MS="60000"
    )
    sessions, updates = 8, 40
    accepted: dict[str, list[int]] = {}
    problems: list[str] = []
    with LiveServer(tmp_path, env, workers=2) as server:
        server.start(ready_lines=2)
        sids = [server.create_session(f"Question {i}?") for i in range(sessions)]

        def report(sid: str) -> None:
            # One keep-alive connection per session: its reports stay with one worker.
            conn = server.connection()
            try:
                for n in range(updates):
                    status, _, body = server.request(
                        "POST",
                        f"/api/sessions/{sid}/progress",
                        body={"execution_status": {f"u{n:03d}": n}, "progress": {"last": n}},
                        conn=conn,
                    )
                    if status != 202:
                        problems.append(f"{sid} #{n}: {status} {body!r}")
                        return
                    accepted.setdefault(sid, []).append(n)
            finally:
                conn.close()

        threads = [threading.Thread(target=report, args=(sid,)) for sid in sids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not problems, problems
        # Nothing has been flushed yet: the interval is a minute.
        engine = sa.create_engine(pg_url)
        try:
            with engine.connect() as conn:
                before = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM session_state WHERE progress ? 'execution_status'"
                    )
                ).scalar()
            assert before == 0
            assert server.stop() == 0  # SIGTERM to the master, then wait for it to exit
            with engine.connect() as conn:
                rows = dict(
                    conn.execute(sa.text("SELECT session_id, progress FROM session_state")).all()
                )
        finally:
            engine.dispose()
    for sid in sids:
        hot = rows[sid] or {}
        got = sorted(int(k[1:]) for k in (hot.get("execution_status") or {}))
        assert got == accepted[sid], f"{sid}: lost {sorted(set(accepted[sid]) - set(got))}"
        assert hot["progress"]["last"] == updates - 1
    assert server.error_lines() == []


def _metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_metrics_sum_every_worker(pg_url: str, tmp_path: Path) -> None:
    env = server_env(tmp_path, pg_url, WEB_CONCURRENCY="2")
    prom_dir = tmp_path / "prom"
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prom_dir)
    # The pid of the worker that answered each request, to prove both of them did.
    args = ["--access-logformat", "pid=%(p)s %(m)s %(U)s %(s)s"]
    with LiveServer(tmp_path, env, workers=2, extra_args=args) as server:
        server.start(ready_lines=2)
        sid = server.create_session()
        sent = {"n": 0}
        lock = threading.Lock()

        def poll(count: int) -> None:
            for _ in range(count):  # a new connection each time: any worker may answer
                status, _, _ = server.request("GET", f"/api/sessions/{sid}/status")
                assert status == 200
                with lock:
                    sent["n"] += 1

        def pids() -> set[str]:
            return {
                line.split()[0]
                for line in server.log().splitlines()
                if line.startswith("pid=") and "/status 200" in line
            }

        def both_workers_answered() -> bool:
            threads = [threading.Thread(target=poll, args=(10,)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            return len(pids()) >= 2

        wait_until(both_workers_answered, 30, "requests answered by both workers", 0)
        status, _, _ = server.request("GET", "/api/sessions/not-a-session/status")
        assert status == 404

        def counted() -> str | None:
            status, headers, body = server.request("GET", "/metrics")
            assert status == 200 and headers["content-type"].startswith("text/plain")
            text = body.decode()
            endpoint = "/api/sessions/<session_id>/status"
            ok = _metric_sum(text, "council_http_requests_total", endpoint=endpoint, status="200")
            return text if ok == sent["n"] else None

        text = wait_until(counted, 10, "/metrics to count every /status request")
        endpoint = "/api/sessions/<session_id>/status"
        assert _metric_sum(text, "council_http_errors_total", endpoint=endpoint, status="404") == 1
        latency = _metric_sum(
            text, "council_http_request_duration_seconds_count", endpoint=endpoint
        )
        assert latency == sent["n"] + 1
        assert _metric_sum(text, "council_runs_in_progress") == 0
        assert "council_flusher_pending_sessions" in text
        # Every worker wrote its own files in the shared directory.
        assert len({p.name.rsplit("_", 1)[-1] for p in prom_dir.glob("counter_*.db")}) >= 2
        assert server.stop() == 0
    assert server.error_lines() == []


def test_json_logs_under_gunicorn(tmp_path: Path) -> None:
    """LOG_FORMAT=json: gunicorn's lines and the app's are all JSON, access lines carry the
    request id, and a session's log lines carry its id."""
    env = server_env(tmp_path, None, WEB_CONCURRENCY="1", LOG_FORMAT="json")
    with LiveServer(tmp_path, env, workers=1) as server:
        server.start(ready_lines=1)
        sid = server.create_session()
        status, headers, _ = server.request(
            "GET", f"/api/sessions/{sid}/status", headers={"X-Request-Id": "trace-me-1"}
        )
        assert status == 200 and headers["x-request-id"] == "trace-me-1"
        assert server.stop() == 0
    entries = []
    for line in server.log().splitlines():
        if line.strip():
            entries.append(json.loads(line))  # every line is one JSON object
    access = [e for e in entries if f"/api/sessions/{sid}/status" in e["message"]]
    assert access and access[0]["message"].endswith("rid=trace-me-1")
    assert any("Agent Council Server ready" in e["message"] for e in entries)
    assert any(e["logger"].startswith("gunicorn") for e in entries)
    assert not [e for e in entries if e["level"] in ("ERROR", "CRITICAL")]
