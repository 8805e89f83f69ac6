"""Real gunicorn on a PostgreSQL that hangs (TCP up, nothing answered: ``TcpProxy.hang``).

Before the bounds, every query waited forever: /status and PUT piled up behind it,
/api/health queued behind them, and SIGTERM's flush blocked until the master's SIGKILL, so
no recovery file was written.  Here each is counted: every request answers (503), health
answers within its 2 s contract while /status is hammered, and SIGTERM leaves every
acknowledged (202) report in a recovery file that the next start replays.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from council_app import create_app
from council_app.recovery import RECOVERY_DIR
from tests.conftest import TEST_DATABASE_URL, postgres_settings
from tests.internals import stored_hot
from tests.tcp_proxy import TcpProxy

from .live_server import LiveServer, server_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

GRACEFUL_S = 14  # worker_exit gets GRACEFUL_S - 5 to flush, then writes the recovery file
HEALTH_CONTRACT_S = 2.0
REPORTS = 12


def test_hung_database_gets_fast_503s_live_health_and_a_clean_sigterm(
    pg_url: str, tmp_path: Path
) -> None:
    target = make_url(TEST_DATABASE_URL)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxied = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    env = server_env(
        tmp_path,
        proxied.render_as_string(hide_password=False),
        PROGRESS_API="1",
        STATE_FLUSH_INTERVAL_MS="60000",  # reports stay in memory until SIGTERM
        DB_STATEMENT_TIMEOUT_MS="1000",
        GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_S),
        GUNICORN_THREADS="4",
    )
    try:
        with LiveServer(tmp_path, env, workers=1) as server:
            server.start()
            sid = server.create_session()
            conn = server.connection()
            accepted = 0
            for i in range(REPORTS):
                status, _, _ = server.request(
                    "POST",
                    f"/api/sessions/{sid}/progress",
                    body={"execution_status": {f"agent{i}": "done"}, "progress": {"execution": i}},
                    conn=conn,
                )
                accepted += status == 202
            conn.close()
            assert accepted == REPORTS

            proxy.hang()
            statuses: Counter[int | str] = Counter()
            lock = threading.Lock()
            first_503 = threading.Event()

            def hammer() -> None:
                for _ in range(15):
                    try:
                        code, _, _ = server.request(
                            "GET", f"/api/sessions/{sid}/status", timeout=20
                        )
                    except OSError as e:  # a client timeout would mean an unbounded wait
                        code = type(e).__name__
                    with lock:
                        statuses[code] += 1
                    if code == 503:
                        first_503.set()

            load = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
            for t in load:
                t.start()
            assert first_503.wait(20), "no /status answered 503 while the database hung"
            health_times = []
            for _ in range(5):  # under load, during the hang
                started = time.monotonic()
                code, _, body = server.request("GET", "/api/health", timeout=20)
                health_times.append(time.monotonic() - started)
                assert code == 503 and body["database"]["ok"] is False
            put_code, _, put_body = server.request(
                "PUT",
                f"/api/sessions/{sid}/council",
                body={"agents": [{"name": "A", "persona": "You are careful."}]},
                timeout=20,
            )
            for t in load:
                t.join(60)
            assert not any(t.is_alive() for t in load)
            assert statuses == Counter({503: 8 * 15}), statuses
            assert put_code == 503 and put_body["error"] == "storage_unavailable"
            assert max(health_times) < HEALTH_CONTRACT_S, health_times

            # SIGTERM: the worker cannot flush, so it writes the recovery file and exits
            # before the master's SIGKILL.
            started = time.monotonic()
            assert server.stop(timeout=GRACEFUL_S + 30) == 0
            # The master SIGKILLs a worker still alive after GRACEFUL_S: exiting sooner
            # means worker_exit finished (flush given up, recovery file written).
            assert time.monotonic() - started < GRACEFUL_S
            assert "SIGKILL" not in server.log()
        record_path = tmp_path / "sessions" / RECOVERY_DIR / f"{sid}.json"
        record = json.loads(record_path.read_text())
        assert len(record["progress"]["patch"]["execution_status"]) == REPORTS

        proxy.restore()
        app = create_app(asdict(postgres_settings(pg_url, tmp_path)) | {"openai_api_key": None})
        try:
            svc = app.extensions["council"]
            wait_for = time.monotonic() + 30
            while record_path.exists() and time.monotonic() < wait_for:
                time.sleep(0.05)  # replay may run in the background (start without the DB)
            hot = stored_hot(svc, sid)
            assert hot["execution_status"] == {f"agent{i}": "done" for i in range(REPORTS)}
            assert hot["progress"]["execution"] == REPORTS - 1
        finally:
            app.extensions["council"].shutdown(timeout=2)
    finally:
        proxy.close()
