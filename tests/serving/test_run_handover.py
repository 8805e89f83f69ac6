"""SIGTERM during a long LLM call under real gunicorn: the run is handed over, not lost.

Server A's members take a minute each; A is stopped (a deploy) while they think.  Its
workers release their leases on the way out, so server B (the new release) takes the run
over at once, not after the 60 s lease, and finishes it with no client action.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.serving.live_server import LiveServer, server_env, wait_until

AGENTS = {"agents": [{"name": n, "persona": f"You are {n}."} for n in ("Ada", "Bo", "Cy")]}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigterm_mid_run_hands_the_run_to_the_next_server(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    common = {"RUN_LEASE_SECONDS": "60", "STATE_FLUSH_INTERVAL_MS": "50"}
    slow_env = server_env(tmp_path, url, OFFLINE_LATENCY_MS="60000", **common)
    with LiveServer(tmp_path, slow_env, workers=2) as old:
        old.start(ready_lines=2)
        sid = old.create_session("Will the deploy lose my answers?")
        status, _, body = old.request("PUT", f"/api/sessions/{sid}/council", body=AGENTS)
        assert status == 200, body
        status, _, body = old.request("POST", f"/api/sessions/{sid}/execute")
        assert status == 200, body

        def thinking() -> bool:
            _, _, s = old.request("GET", f"/api/sessions/{sid}/status")
            members = (s.get("members") or {}).get("execute") or {}
            return len(members) == 3 and {m["state"] for m in members.values()} == {"thinking"}

        wait_until(thinking, 20, "every member thinking")
        stopped = time.monotonic()
        old.stop()  # SIGTERM: gunicorn's graceful stop, worker_exit in each worker
        stop_s = time.monotonic() - stopped
        assert "handed over" in old.log()
    assert stop_s < 15, f"SIGTERM took {stop_s:.1f} s (the calls take 60 s)"

    fast_env = server_env(tmp_path, url, OFFLINE_LATENCY_MS="0", **common)
    with LiveServer(tmp_path, fast_env, workers=2) as new:
        started = time.monotonic()
        new.start(ready_lines=2)

        def finished() -> dict[str, object] | None:
            _, _, s = new.request("GET", f"/api/sessions/{sid}/status")
            return s if s.get("status") != "executing" else None

        body = wait_until(finished, 30, "the run to finish on the new server")
        took = time.monotonic() - started
        assert body["status"] == "execution_complete", body
        assert took < 30  # far below the 60 s lease: the old workers released it
        status, _, results = new.request("GET", f"/api/sessions/{sid}/results")
        assert status == 200
        assert [r["status"] for r in results["execution_results"]] == ["success"] * 3
        assert "Took over run execute" in new.log()
        new.stop()
