"""``?retry=failed`` asks the LLM only for the members whose last answer failed (issue 15).

Counted, not assumed: the session's call log (GET /logs) and, over HTTP, the requests a
loopback Chat Completions server received.  The kept members' answers stay byte for byte
and their cost is in the totals once.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from council_app.services import Services
from council_app.settings import Settings
from tests.api.api_helpers import (
    assert_error,
    built_app,
    create,
    execute_and_wait,
    put_council,
    review_and_wait,
    services_of,
    status,
)
from tests.api.api_helpers import fake_llm_app as _fake_llm_app


def calls(client: FlaskClient, sid: str, step: str) -> list[str]:
    """The agents asked in ``step``, from the session's LLM call log (one line a call)."""
    r = client.get(f"/api/sessions/{sid}/logs")
    assert r.status_code == 200, r.get_data(as_text=True)
    return sorted(e["agent"] for e in r.json["logs"] if e["step"] == step)


def retry(client: FlaskClient, svc: Services, sid: str, path: str = "execute") -> dict[str, Any]:
    r = client.post(f"/api/sessions/{sid}/{path}?retry=failed")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json == {"status": "accepted"}
    assert svc.workflow.join(sid, 30)
    return client.get(f"/api/sessions/{sid}/status").json


def results(client: FlaskClient, sid: str) -> dict[str, dict[str, Any]]:
    r = client.get(f"/api/sessions/{sid}/results")
    assert r.status_code == 200, r.get_data(as_text=True)
    return {e["agent_name"]: e for e in r.json["execution_results"]}


def tokens(client: FlaskClient, sid: str) -> dict[str, Any]:
    r = client.get(f"/api/sessions/{sid}/status")
    assert r.status_code == 200
    value: dict[str, Any] = r.json["tokens"]
    return value


def test_retry_asks_only_the_failed_agent_and_keeps_the_others(
    backend_settings: Settings,
) -> None:
    with built_app(backend_settings, offline_fail_members=("Engineer",)) as app:
        client, svc = app.test_client(), services_of(app)
        sid = create(client)
        put_council(client, sid)
        first = execute_and_wait(client, svc, sid)
        assert first["status"] == "execution_complete"  # two of three succeeded
        assert calls(client, sid, "execute") == ["Economist", "Engineer", "Skeptic"]
        before = results(client, sid)
        assert before["Engineer"]["status"] == "error"
        cost_before = tokens(client, sid)

        svc.provider.fail_members = frozenset()  # the outage is over  # type: ignore[attr-defined]
        after_status = retry(client, svc, sid)

        assert after_status["status"] == "execution_complete"
        # One more call in all, for the failed agent only.
        assert calls(client, sid, "execute") == ["Economist", "Engineer", "Engineer", "Skeptic"]
        after = results(client, sid)
        assert after["Engineer"]["status"] == "success"
        for kept in ("Economist", "Skeptic"):
            assert after[kept] == before[kept]  # the same answer, not a new one
        assert [e["proposal_id"] for e in after.values()] == [1, 2, 3]
        assert after_status["execution_status"]["Engineer"] == "Done"
        # Counted once: only the Engineer's tokens were added by the retry.
        cost_after = tokens(client, sid)
        for kept in ("Economist", "Skeptic"):
            assert cost_after["by_agent"][kept] == cost_before["by_agent"][kept]
        assert cost_after["by_agent"]["Engineer"]["total_tokens"] > 0
        assert cost_after["total_tokens"] == (
            cost_before["total_tokens"] + cost_after["by_agent"]["Engineer"]["total_tokens"]
        )


def test_retry_with_nothing_failed_starts_nothing(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    put_council(client, sid)
    execute_and_wait(client, svc, sid)
    r = client.post(f"/api/sessions/{sid}/execute?retry=failed")
    assert r.status_code == 200
    assert r.json == {"status": "nothing_to_retry"}
    assert calls(client, sid, "execute") == ["Economist", "Engineer", "Skeptic"]


def test_retry_before_any_run_asks_everyone(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    put_council(client, sid)
    assert retry(client, svc, sid)["status"] == "execution_complete"
    assert calls(client, sid, "execute") == ["Economist", "Engineer", "Skeptic"]


@pytest.mark.parametrize("query", ["retry=all", "retry=FAILED", "retry=failed&force=true"])
def test_bad_retry_query_is_400(client: FlaskClient, query: str) -> None:
    sid = create(client)
    put_council(client, sid)
    assert_error(client.post(f"/api/sessions/{sid}/execute?{query}"), 400, "bad_request")
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "ready_to_execute"


def test_retry_of_unknown_session_is_404(client: FlaskClient) -> None:
    assert_error(client.post("/api/sessions/s_nope/execute?retry=failed"), 404)


def test_retry_while_running_is_409(backend_settings: Settings) -> None:
    with built_app(backend_settings, offline_latency_ms=3000) as app:
        client, svc = app.test_client(), services_of(app)
        sid = create(client)
        put_council(client, sid)
        assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
        assert_error(client.post(f"/api/sessions/{sid}/execute?retry=failed"), 409)
        client.post(f"/api/sessions/{sid}/cancel")
        assert svc.workflow.join(sid, 30)


@pytest.mark.slow
def test_review_retry_asks_only_the_failed_reviewer(backend_settings: Settings) -> None:
    """Over HTTP: the offline stand-in's review prompts do not name the reviewer."""
    with _fake_llm_app(backend_settings) as (app, fake):
        client, svc = app.test_client(), services_of(app)
        sid = create(client)
        put_council(client, sid)
        execute_and_wait(client, svc, sid)
        fake.overrides[("review", "Skeptic")] = status(500, "upstream down")
        assert review_and_wait(client, svc, sid)["status"] == "review_complete"
        reviews = client.get(f"/api/sessions/{sid}/reviews").json["reviews"]
        kept = {r["reviewer"]: r for r in reviews if "parsed" in r}
        assert sorted(kept) == ["Economist", "Engineer"]

        del fake.overrides[("review", "Skeptic")]
        before = len(fake.calls)
        assert retry(client, svc, sid, "peer_review")["status"] == "review_complete"

        assert fake.calls[before:] == [("review", "Skeptic")]
        assert calls(client, sid, "review") == ["Economist", "Engineer", "Skeptic", "Skeptic"]
        reviews = client.get(f"/api/sessions/{sid}/reviews").json["reviews"]
        after = {r["reviewer"]: r for r in reviews}
        assert "parsed" in after["Skeptic"]
        for name, review in kept.items():
            assert after[name] == review


@pytest.mark.slow
def test_retry_over_http_sends_one_request_for_the_failed_agent(
    backend_settings: Settings,
) -> None:
    """The real OpenAI client against a loopback server: the retry is one request."""
    with _fake_llm_app(backend_settings) as (app, fake):
        client, svc = app.test_client(), services_of(app)
        fake.overrides[("execute", "Skeptic")] = status(500, "upstream down")
        sid = create(client)
        put_council(client, sid)
        assert execute_and_wait(client, svc, sid)["status"] == "execution_complete"
        first = [c for c in fake.calls if c[0] == "execute"]
        assert sorted(a for _, a in first) == ["Economist", "Engineer", "Skeptic"]
        cost_before = tokens(client, sid)["total_cost_usd"]

        del fake.overrides[("execute", "Skeptic")]
        before = len(fake.calls)
        assert retry(client, svc, sid)["status"] == "execution_complete"

        assert fake.calls[before:] == [("execute", "Skeptic")]
        assert results(client, sid)["Skeptic"]["status"] == "success"
        spent = tokens(client, sid)
        skeptic = spent["by_agent"]["Skeptic"]["total_cost_usd"]
        assert skeptic > 0
        assert spent["total_cost_usd"] == pytest.approx(cost_before + skeptic)
