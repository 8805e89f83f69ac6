"""A retry of the failed members survives a hand-over (both backends): the worker that
takes it over keeps the members the retry kept (their checkpoints say so) and asks only
the failed one; nothing is paid or counted twice."""

from __future__ import annotations

import time
from typing import Any

import pytest

from council_app.settings import Settings
from tests.internals import store_of
from tests.workflow.test_runs import make_app, member_states, new_session, wait_until


def execute_calls(client: Any, sid: str) -> dict[str, int]:
    """Finished execute calls per agent, from the session's call log."""
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    counts: dict[str, int] = {}
    for entry in logs:
        if entry["step"] == "execute":
            counts[entry["agent"]] = counts.get(entry["agent"], 0) + 1
    return counts


def answers(client: Any, sid: str) -> dict[str, dict[str, Any]]:
    results = client.get(f"/api/sessions/{sid}/results").json["execution_results"]
    return {r["agent_name"]: r for r in results}


def executed_with_bo_failing(settings: Settings) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A session executed once with Bo's call failing: its id, answers and tokens."""
    first = make_app(settings, offline_latency_ms=0, offline_fail_members=("Bo",))
    try:
        client = first.test_client()
        sid = new_session(client)
        assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
        assert first.extensions["council"].workflow.join(sid, 30)
        status = client.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_complete"
        before = answers(client, sid)
        assert before["Bo"]["status"] == "error"
        return sid, before, status["tokens"]
    finally:
        first.extensions["council"].shutdown(timeout=5)


def test_a_retry_handed_over_keeps_the_kept_members(backend_settings: Settings) -> None:
    sid, before, tokens_before = executed_with_bo_failing(backend_settings)

    # The retry starts on a worker whose calls take a minute, which then leaves.
    leaving = make_app(backend_settings, offline_latency_ms=60_000, run_lease_seconds=60)
    staying = None
    try:
        client = leaving.test_client()
        r = client.post(f"/api/sessions/{sid}/execute?retry=failed")
        assert r.json == {"status": "accepted"}
        wait_until(lambda: member_states(client, sid).get("Bo") == "thinking")
        assert member_states(client, sid) == {"Ada": "done", "Bo": "thinking", "Cy": "done"}
        started = time.monotonic()
        leaving.extensions["council"].shutdown(timeout=5)  # SIGTERM: hand the run over
        assert time.monotonic() - started < 3.0

        staying = make_app(backend_settings, offline_latency_ms=0, run_lease_seconds=60)
        other = staying.test_client()
        wait_until(lambda: other.get(f"/api/sessions/{sid}/status").json["status"] != "executing")
        status = other.get(f"/api/sessions/{sid}/status").json
        assert status["status"] == "execution_complete", status
        assert set(member_states(other, sid).values()) == {"done"}

        after = answers(other, sid)
        assert after["Bo"]["status"] == "success"
        assert after["Ada"] == before["Ada"] and after["Cy"] == before["Cy"]
        calls = execute_calls(other, sid)
        assert calls["Ada"] == calls["Cy"] == 1  # asked by the first run only
        # The kept members' cost is the first run's, counted once.
        tokens = status["tokens"]
        for kept in ("Ada", "Cy"):
            assert tokens["by_agent"][kept] == tokens_before["by_agent"][kept]
        bo = tokens["by_agent"]["Bo"]["total_tokens"]
        assert bo > 0
        assert tokens["total_tokens"] == tokens_before["total_tokens"] + bo
    finally:
        leaving.extensions["council"].shutdown(timeout=2)
        if staying is not None:
            staying.extensions["council"].shutdown(timeout=2)


class ProcessDied(BaseException):
    """Stands for SIGKILL: nothing after it runs in the dying process."""


def test_a_retry_whose_worker_dies_right_after_starting_it_keeps_the_kept_members(
    backend_settings: Settings,
) -> None:
    sid, before, _ = executed_with_bo_failing(backend_settings)

    # The worker dies the moment the retry's start is stored: no line of it runs after
    # the compare-and-set, not even the one launching the run.
    dying = make_app(backend_settings, offline_latency_ms=0, run_lease_seconds=2)
    store = store_of(dying.extensions["council"])
    write_state = store.write_state

    def dies_after_storing(*args: Any, **kwargs: Any) -> None:
        write_state(*args, **kwargs)
        raise ProcessDied

    store.write_state = dies_after_storing  # type: ignore[method-assign]
    try:
        with pytest.raises(ProcessDied):
            dying.test_client().post(f"/api/sessions/{sid}/execute?retry=failed")
    finally:
        store.write_state = write_state  # type: ignore[method-assign]
        dying.extensions["council"].shutdown(timeout=2)

    # Another worker's sweeper takes the run over once its lease (2 s) ran out.
    staying = make_app(backend_settings, offline_latency_ms=0, run_lease_seconds=2)
    try:
        other = staying.test_client()
        wait_until(lambda: other.get(f"/api/sessions/{sid}/status").json["status"] != "executing")
        assert other.get(f"/api/sessions/{sid}/status").json["status"] == "execution_complete"
        after = answers(other, sid)
        assert after["Bo"]["status"] == "success"
        assert after["Ada"] == before["Ada"] and after["Cy"] == before["Cy"]
        calls = execute_calls(other, sid)
        assert calls["Ada"] == calls["Cy"] == 1, calls  # not asked again by the takeover
        assert calls["Bo"] == 2  # failed once, asked once more
    finally:
        staying.extensions["council"].shutdown(timeout=2)
