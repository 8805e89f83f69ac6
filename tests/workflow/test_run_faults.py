"""A worker SIGKILLed in the middle of any step: another worker takes the run over, with no
client action, and asks the LLM only for the members that had no stored answer.

The dying worker is a subprocess (its own engine, flusher, threads) on the same database
and SESSIONS_DIR; the survivor is an app in this process whose lease sweeper does the rest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from council_app import create_app
from council_app.settings import Settings
from tests.providers.fake_openai import FakeOpenAIServer, hang, success

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 2
AGENTS = ("Ada", "Brunel", "Curie")
PERSONAS = {name: f"You are {name}, persona marker <{name}>." for name in AGENTS}

# Prerequisite steps run fast; the step under test runs in an app whose LLM calls are slow
# (offline provider, 60 s) or hang (the fake OpenAI server), and the process is killed.
RUNNER = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    from council_app import create_app
    cfg = json.loads(sys.argv[1])
    step, personas, slow_overrides = cfg.pop("step"), cfg.pop("personas"), cfg.pop("slow")
    cfg["sessions_dir"] = Path(cfg["sessions_dir"])
    fast = create_app({**cfg, "offline_latency_ms": 0})
    c = fast.test_client()
    sid = c.post("/api/sessions", data={"question": "Survive a crash?"}).json["session_id"]
    agents = [{"name": n, "persona": p} for n, p in personas.items()]
    if step != "build":
        assert c.put(f"/api/sessions/{sid}/council", json={"agents": agents}).status_code == 200
    svc = fast.extensions["council"]
    if step in ("review", "synthesize"):
        assert c.post(f"/api/sessions/{sid}/execute").status_code < 300
        assert svc.workflow.join(sid, 30)
    if step == "synthesize":
        assert c.post(f"/api/sessions/{sid}/peer_review").status_code < 300
        assert svc.workflow.join(sid, 30)
    slow = create_app({**cfg, **slow_overrides})
    s = slow.test_client()
    path = {"build": "build_council", "execute": "execute", "review": "peer_review",
            "synthesize": "synthesize"}[step]
    threading.Thread(target=lambda: s.post(f"/api/sessions/{sid}/{path}"), daemon=True).start()
    print(sid, flush=True)
    threading.Event().wait()
    """
)


def _values(settings: Settings, **overrides: Any) -> dict[str, Any]:
    values = {
        **asdict(settings),
        "openai_api_key": None,
        "run_lease_seconds": LEASE_S,
        "state_flush_interval_ms": 50,
        "council_max_parallel": len(AGENTS),
    }
    values.update(overrides)
    return values


def _start_dying_worker(
    settings: Settings, step: str, **slow: Any
) -> tuple[subprocess.Popen[str], str]:
    cfg = _values(settings)
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items()}
    cfg.update(step=step, personas=PERSONAS, slow={"offline_latency_ms": 60_000, **slow})
    import json

    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, json.dumps(cfg, default=str)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    sid = proc.stdout.readline().strip() if proc.stdout else ""
    assert sid.startswith("session_"), f"runner failed (exit {proc.poll()})"
    return proc, sid


def _survivor(settings: Settings, **overrides: Any) -> Flask:
    return create_app(_values(settings, **overrides))


def _wait_status(app: Flask, sid: str, done: set[str], timeout: float) -> dict[str, Any]:
    client = app.test_client()
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/sessions/{sid}/status").json or {}
        if body.get("status") in done:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{sid} still {body.get('status')!r} after {timeout} s: {body}")


def _wait_running(app: Flask, sid: str, running: str, timeout: float = 20) -> None:
    _wait_status(app, sid, {running}, timeout)


def _kill(proc: subprocess.Popen[str]) -> float:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return time.monotonic()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step", "running", "done"),
    [
        ("build", "build_in_progress", "build_complete"),
        ("execute", "executing", "execution_complete"),
        ("review", "reviewing", "review_complete"),
        ("synthesize", "synthesizing", "verdict_complete"),
    ],
)
def test_sigkill_mid_step_is_taken_over_and_completes(
    backend_settings: Settings, step: str, running: str, done: str
) -> None:
    proc, sid = _start_dying_worker(backend_settings, step)
    app = observer = None
    try:
        # Watch without a sweeper of our own until the kill: the run is the dying worker's.
        observer = _survivor(backend_settings)
        observer.extensions["council"].workflow.stop(0)
        _wait_running(observer, sid, running)
        killed_at = _kill(proc)
        assert observer.test_client().get(f"/api/sessions/{sid}/status").json["status"] == running
        app = _survivor(backend_settings, offline_latency_ms=0)
        body = _wait_status(app, sid, {done}, LEASE_S + 5)
        assert time.monotonic() - killed_at <= LEASE_S + 5
        assert body["members"][step]  # typed member states, all finished
        assert {m["state"] for m in body["members"][step].values()} <= {"done", "skipped"}
        summary = app.test_client().get(f"/api/sessions/{sid}/summary").json
        key = {
            "build": "council_config",
            "execute": "execution_results",
            "review": "peer_reviews",
            "synthesize": "chairman_verdict",
        }[step]
        assert summary[key]
        # Nothing is left running, and the session is usable: the next step starts.
        assert app.test_client().post(f"/api/sessions/{sid}/cancel").status_code == 409
    finally:
        if proc.poll() is None:
            _kill(proc)
        for a in (app, observer):
            if a is not None:
                a.extensions["council"].shutdown(timeout=2)


def _asked(server: FakeOpenAIServer) -> Counter[str]:
    """How many chat calls the fake LLM received per agent (by the persona marker)."""
    counts: Counter[str] = Counter()
    for request in server.chat_requests():
        text = str(request.body)
        for name in AGENTS:
            if f"<{name}>" in text:
                counts[name] += 1
    return counts


@pytest.mark.slow
def test_sigkill_mid_execute_asks_each_member_once_plus_calls_in_flight(
    backend_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    with FakeOpenAIServer(default=success("An answer.\nTL;DR: yes")) as llm:
        llm.models = None
        # The first call answers at once, the next two never do (until the server stops).
        llm.push(success("Early answer.\nTL;DR: early"), hang(), hang())
        openai = {
            "openai_api_key": "test-key",
            "openai_base_url": llm.base_url,
            "llm_max_retries": 0,
        }
        proc, sid = _start_dying_worker(backend_settings, "execute", **openai)
        app = observer = None
        try:
            observer = _survivor(backend_settings)
            observer.extensions["council"].workflow.stop(0)
            states = observer.extensions["council"].states
            deadline = time.monotonic() + 20
            root = None
            while time.monotonic() < deadline:  # one answer checkpointed, two calls in flight
                found = states.hot(sid)
                run = (found[1].get("run") if found else None) or {}
                root = run.get("root")
                if root and len(states.run_members(root)) == 1 and len(llm.chat_requests()) == 3:
                    break
                time.sleep(0.02)
            else:
                raise AssertionError(
                    f"never reached 1 checkpoint + 2 calls in flight: {_asked(llm)}"
                )
            in_flight = len(llm.chat_requests()) - 1
            killed_at = _kill(proc)
            app = _survivor(backend_settings, **openai)
            body = _wait_status(app, sid, {"execution_complete"}, LEASE_S + 5)
            assert time.monotonic() - killed_at <= LEASE_S + 5
            asked = _asked(llm)
            assert set(asked) == set(AGENTS)
            assert sum(asked.values()) <= len(AGENTS) + in_flight
            assert sorted(asked.values()) == [1, 2, 2]  # the answered one was not asked again
            results = app.test_client().get(f"/api/sessions/{sid}/results").json
            assert [r["agent_name"] for r in results["execution_results"]] == list(AGENTS)
            assert all(r["status"] == "success" for r in results["execution_results"])
            # The cost of each answer counted once: three answered calls, 11+7 tokens each.
            tokens = body["tokens"]
            assert tokens["by_step"]["execute"]["total_tokens"] == 3 * 18
        finally:
            if proc.poll() is None:
                _kill(proc)
            for a in (app, observer):
                if a is not None:
                    a.extensions["council"].shutdown(timeout=2)
