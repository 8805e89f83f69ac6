"""The step guard: concurrent /execute or /peer_review calls start exactly one run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from council_app.settings import Settings
from tests.api.api_helpers import AGENTS, built_app, create, put_council, services_of

THREADS = 8


@pytest.fixture
def slow_app(backend_settings: Settings) -> Iterator[Flask]:
    # Slow enough that every racing request lands while the winner's run is executing.
    with built_app(backend_settings, offline_latency_ms=0) as application:
        yield application


def slow_runs(app: Flask) -> None:
    services_of(app).provider.latency_ms = 600


def race(app: Flask, path: str) -> list[tuple[int, dict[str, Any]]]:
    """POST ``path`` from THREADS threads released together; (status, body) of each."""
    barrier = threading.Barrier(THREADS)
    answers: list[tuple[int, dict[str, Any]]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            r = client.post(path)
            with lock:
                answers.append((r.status_code, r.json))
        except BaseException as e:  # surfaced below, not lost in the thread
            with lock:
                failures.append(e)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures, failures
    assert len(answers) == THREADS
    return answers


def check_one_winner(answers: list[tuple[int, dict[str, Any]]], running: str) -> None:
    accepted = [a for a in answers if a[1] == {"status": "accepted"}]
    assert len(accepted) == 1, answers
    assert accepted[0][0] == 200
    for code, body in answers:
        if body == {"status": "accepted"}:
            continue
        assert code == 409, (code, body)
        assert body["error"] == "conflict"
        assert body["current_status"] == running, body
        assert running in body["detail"]


def test_parallel_execute_starts_one_run(slow_app: Flask) -> None:
    client, svc = slow_app.test_client(), services_of(slow_app)
    sid = create(client)
    put_council(client, sid)
    slow_runs(slow_app)
    answers = race(slow_app, f"/api/sessions/{sid}/execute")
    check_one_winner(answers, "executing")
    assert svc.workflow.join(sid, 30)

    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["status"] == "execution_complete"
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert [e["step"] for e in logs].count("execute") == len(AGENTS)
    results = client.get(f"/api/sessions/{sid}/results").json["execution_results"]
    assert sorted(r["proposal_id"] for r in results) == [1, 2, 3]

    # Once finished, further racing calls all see the results and start nothing.
    answers = race(slow_app, f"/api/sessions/{sid}/execute")
    assert answers == [(200, {"status": "already_executed"})] * THREADS


def test_parallel_peer_review_starts_one_run(slow_app: Flask) -> None:
    client, svc = slow_app.test_client(), services_of(slow_app)
    sid = create(client)
    put_council(client, sid)
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
    assert svc.workflow.join(sid, 30)

    slow_runs(slow_app)
    answers = race(slow_app, f"/api/sessions/{sid}/peer_review")
    check_one_winner(answers, "reviewing")
    assert svc.workflow.join(sid, 30)
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "review_complete"
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert [e["step"] for e in logs].count("review") == len(AGENTS)
    assert len(client.get(f"/api/sessions/{sid}/reviews").json["reviews"]) == len(AGENTS)

    answers = race(slow_app, f"/api/sessions/{sid}/peer_review")
    assert answers == [(200, {"status": "already_reviewed"})] * THREADS


def test_other_steps_are_refused_while_running(slow_app: Flask) -> None:
    client, svc = slow_app.test_client(), services_of(slow_app)
    sid = create(client)
    put_council(client, sid)
    slow_runs(slow_app)
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
    for method, path, kwargs in [
        ("POST", "execute?force=true", {}),
        ("POST", "peer_review", {}),
        ("POST", "build_council?force=true", {}),
        ("PUT", "council", {"json": {"agents": AGENTS}}),
    ]:
        r = client.open(f"/api/sessions/{sid}/{path}", method=method, **kwargs)
        assert r.status_code == 409, (path, r.json)
        assert r.json["current_status"] == "executing"
    assert svc.workflow.join(sid, 30)
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "execution_complete"


def test_parallel_build_and_synthesize_call_the_model_once(slow_app: Flask) -> None:
    client, svc = slow_app.test_client(), services_of(slow_app)
    sid = create(client)
    slow_runs(slow_app)
    answers = race(slow_app, f"/api/sessions/{sid}/build_council")
    built = [body for code, body in answers if code == 200]
    assert built and all(body == built[0] for body in built), answers
    for code, body in answers:
        assert code in (200, 409), (code, body)
        if code == 409:
            assert body["current_status"] == "build_in_progress"
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert [e["step"] for e in logs] == ["build"]

    svc.provider.latency_ms = 0
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
    assert svc.workflow.join(sid, 30)
    assert client.post(f"/api/sessions/{sid}/peer_review").status_code == 200
    assert svc.workflow.join(sid, 30)
    slow_runs(slow_app)
    answers = race(slow_app, f"/api/sessions/{sid}/synthesize")
    verdicts = [body["verdict"] for code, body in answers if code == 200]
    assert verdicts and len(set(verdicts)) == 1, answers
    for code, body in answers:
        assert code in (200, 409), (code, body)
        if code == 409:
            assert body["current_status"] == "synthesizing"
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert [e["step"] for e in logs].count("synthesize") == 1
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "verdict_complete"
