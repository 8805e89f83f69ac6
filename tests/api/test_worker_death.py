"""Two processes on one PostgreSQL: a worker killed mid-run, and a cancel from another worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

from council_app import create_app
from tests.conftest import postgres_settings

ROOT = Path(__file__).resolve().parents[2]

RUNNER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from council_app import create_app
    app = create_app({
        "database_url": sys.argv[1], "sessions_dir": Path(sys.argv[2]),
        "openai_api_key": None, "offline_latency_ms": 60000, "run_lease_seconds": 2,
        "state_flush_interval_ms": 50,
    })
    client = app.test_client()
    sid = client.post("/api/sessions", data={"question": "Will this survive?"}).json["session_id"]
    council = {"agents": [{"name": n, "persona": "You think slowly."} for n in ("A", "B")]}
    assert client.put(f"/api/sessions/{sid}/council", json=council).status_code == 200
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200  # agents take 60 s
    print(sid, flush=True)
    threading.Event().wait()
    """
)


def _app(pg_url: str, tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    values = {**asdict(postgres_settings(pg_url, tmp_path)), "openai_api_key": None}
    values.update(overrides)
    return create_app(values)


def test_sigkilled_worker_run_is_taken_over_by_a_live_worker(pg_url, tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, pg_url, str(tmp_path / "sessions")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sid = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert sid.startswith("session_")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    app = _app(pg_url, tmp_path, run_lease_seconds=2)
    client = app.test_client()
    try:
        # Nobody presses "run" again: this worker's sweeper takes the run over once the
        # dead worker's lease ran out, and finishes it.
        deadline = time.monotonic() + 2 + 5
        status = {}
        while time.monotonic() < deadline:
            status = client.get(f"/api/sessions/{sid}/status").json
            if status["status"] != "executing":
                break
            time.sleep(0.1)
        assert status["status"] == "execution_complete", status
        assert not status.get("execution_error")
    finally:
        app.extensions["council"].shutdown(timeout=2)


def test_cancel_received_by_another_worker(pg_url, tmp_path) -> None:
    runner = _app(pg_url, tmp_path, offline_latency_ms=300, council_max_parallel=1)
    other = _app(pg_url, tmp_path)  # a second worker: its own engine, flusher and threads
    try:
        a, b = runner.test_client(), other.test_client()
        sid = a.post("/api/sessions", data={"question": "Stop me?"}).json["session_id"]
        assert a.post(f"/api/sessions/{sid}/build_council").status_code == 200
        assert a.post(f"/api/sessions/{sid}/execute").status_code == 200
        assert b.post(f"/api/sessions/{sid}/cancel").status_code == 202
        assert runner.extensions["council"].workflow.join(sid, 30)
        status = b.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_error"
        assert status["execution_error"].startswith("cancelled")
        assert "Cancelled" in status["execution_status"].values()
    finally:
        runner.extensions["council"].shutdown(timeout=2)
        other.extensions["council"].shutdown(timeout=2)
