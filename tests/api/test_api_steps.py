"""Step order, what existing clients send and expect, and forced re-runs (both backends)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from council_app.services import Services
from council_app.settings import DEV_USER
from tests.api.api_helpers import (
    AGENTS,
    assert_error,
    create,
    execute_and_wait,
    put_council,
    review_and_wait,
)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def full_flow(client: FlaskClient, svc: Services, sid: str) -> None:
    assert client.post(f"/api/sessions/{sid}/build_council").status_code == 200
    assert execute_and_wait(client, svc, sid)["status"] == "execution_complete"
    assert review_and_wait(client, svc, sid)["status"] == "review_complete"
    r = client.post(f"/api/sessions/{sid}/synthesize")
    assert r.status_code == 200, r.json


# -- step order -------------------------------------------------------------------------


def test_execute_before_build_is_400_naming_build_council(client: FlaskClient) -> None:
    sid = create(client)
    body = assert_error(client.post(f"/api/sessions/{sid}/execute"), 400)
    assert "build_council" in body["detail"]
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "idle"


def test_peer_review_before_execute_is_400(client: FlaskClient) -> None:
    sid = create(client)
    body = assert_error(client.post(f"/api/sessions/{sid}/peer_review"), 400)
    assert "execute" in body["detail"]
    put_council(client, sid)
    body = assert_error(client.post(f"/api/sessions/{sid}/peer_review"), 400)
    assert "execute" in body["detail"]
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "ready_to_execute"


def test_synthesize_before_review_is_400(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    body = assert_error(client.post(f"/api/sessions/{sid}/synthesize"), 400)
    assert "peer_review" in body["detail"]
    put_council(client, sid)
    execute_and_wait(client, svc, sid)
    body = assert_error(client.post(f"/api/sessions/{sid}/synthesize"), 400)
    assert "peer_review" in body["detail"]
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "execution_complete"


# -- what existing clients send ---------------------------------------------------------


@pytest.mark.parametrize("style", ["null_json", "no_body", "empty_json_type"])
def test_step_posts_ignore_their_body(client: FlaskClient, svc: Services, style: str) -> None:
    def post(path: str) -> Any:
        if style == "null_json":
            return client.post(path, data="null", content_type="application/json")
        if style == "empty_json_type":
            return client.post(path, data="", content_type="application/json")
        return client.post(path)

    sid = create(client)
    r = post(f"/api/sessions/{sid}/build_council")
    assert r.status_code == 200, r.json
    assert r.json["agents"]
    r = post(f"/api/sessions/{sid}/execute")
    assert r.status_code == 200 and r.json == {"status": "accepted"}
    assert svc.workflow.join(sid, 30)
    r = post(f"/api/sessions/{sid}/peer_review")
    assert r.status_code == 200 and r.json == {"status": "accepted"}
    assert svc.workflow.join(sid, 30)
    r = post(f"/api/sessions/{sid}/synthesize")
    assert r.status_code == 200 and r.json["verdict"]


FALSE_SPELLINGS = ["false", "FALSE", "False", "0", "no", "NO", "off", ""]
TRUE_SPELLINGS = ["true", "True", "TRUE", "1", "yes", "YES"]


def test_force_false_spellings_mean_false(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    council = client.post(f"/api/sessions/{sid}/build_council").json
    for value in FALSE_SPELLINGS:
        assert client.post(f"/api/sessions/{sid}/build_council?force={value}").json == council
    execute_and_wait(client, svc, sid)
    for value in FALSE_SPELLINGS:
        r = client.post(f"/api/sessions/{sid}/execute?force={value}")
        assert r.status_code == 200 and r.json == {"status": "already_executed"}, value
    review_and_wait(client, svc, sid)
    for value in FALSE_SPELLINGS:
        r = client.post(f"/api/sessions/{sid}/peer_review?force={value}")
        assert r.status_code == 200 and r.json == {"status": "already_reviewed"}, value
    verdict = client.post(f"/api/sessions/{sid}/synthesize").json["verdict"]
    for value in FALSE_SPELLINGS:
        r = client.post(f"/api/sessions/{sid}/synthesize?force={value}")
        assert r.json["verdict"] == verdict, value
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "verdict_complete"
    r = client.delete(f"/api/sessions/{sid}?hard=FALSE")
    assert r.status_code == 200 and r.json["hard"] is False


def test_force_true_spellings_mean_true(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    put_council(client, sid)
    execute_and_wait(client, svc, sid)
    for value in TRUE_SPELLINGS:
        r = client.post(f"/api/sessions/{sid}/execute?force={value}")
        assert r.status_code == 200 and r.json == {"status": "accepted"}, value
        assert svc.workflow.join(sid, 30)
    for value in TRUE_SPELLINGS:
        r = client.post(f"/api/sessions/{sid}/peer_review?force={value}")
        assert r.status_code == 200 and r.json == {"status": "accepted"}, value
        assert svc.workflow.join(sid, 30)
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    runs = 1 + len(TRUE_SPELLINGS)
    assert [e["step"] for e in logs].count("execute") == runs * len(AGENTS)
    # build_council?force=<true> replaces the hand-made council with a built one.
    for value in TRUE_SPELLINGS[:2]:
        built = client.post(f"/api/sessions/{sid}/build_council?force={value}").json
        assert [a["name"] for a in built["agents"]] != [a["name"] for a in AGENTS]
    r = client.delete(f"/api/sessions/{sid}?hard=Yes")
    assert r.status_code == 200 and r.json["hard"] is True


def test_no_identity_header_is_the_dev_user(client: FlaskClient) -> None:
    sid = create(client)
    mine = client.get("/api/sessions", headers={"X-User-Id": DEV_USER}).json["sessions"]
    assert [s["session_id"] for s in mine] == [sid]
    r = client.get(f"/api/sessions/{sid}/status", headers={"X-User-Id": DEV_USER})
    assert r.status_code == 200
    assert client.get("/api/sessions", headers={"X-User-Id": "carol"}).json["sessions"] == []
    # And a session made with the explicit dev header is visible without any header.
    other = create(client, headers={"X-User-Id": DEV_USER})
    assert {s["session_id"] for s in client.get("/api/sessions").json["sessions"]} == {sid, other}


def test_numbers_are_json_numbers(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    full_flow(client, svc, sid)
    status = client.get(f"/api/sessions/{sid}/status").json
    tokens = status["tokens"]
    for key in ("input_tokens", "output_tokens", "total_tokens", "total_cost_usd"):
        assert is_number(tokens[key]), (key, tokens)
    assert tokens["total_tokens"] > 0
    assert is_number(status["progress"]["execution"]) and is_number(status["progress"]["review"])

    listed = client.get("/api/sessions").json["sessions"][0]
    assert is_number(listed["last_cost_usd"])
    assert is_number(listed["last_total_tokens"]) and listed["last_total_tokens"] > 0

    results = client.get(f"/api/sessions/{sid}/results").json["execution_results"]
    assert all(type(r["proposal_id"]) is int for r in results)
    reviews = client.get(f"/api/sessions/{sid}/reviews").json
    assert reviews["reviews"]
    for review in reviews["reviews"]:
        entries = review["parsed"]["per_proposal"]
        assert entries
        for entry in entries:
            assert type(entry["proposal_id"]) is int
            assert type(entry["score"]) is int and 1 <= entry["score"] <= 5
        assert all(type(pid) is int for pid in review["parsed"]["overall_ranking"])
    for key, entry in reviews["aggregated_scores"].items():
        assert key.isdigit()
        assert entry["scores"] and all(is_number(s) for s in entry["scores"])
        assert all(isinstance(c, str) for c in entry["comments"])


def test_summary_carries_what_clients_rebuild_from(client: FlaskClient, svc: Services) -> None:
    sid = create(client, question="Which queue should we use?")
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["question"] == "Which queue should we use?"
    assert summary["session_id"] == sid
    assert summary["status"] == "idle" and summary["current_step"] == "input"
    for key in ("council_config", "execution_results", "chairman_verdict"):
        assert key in summary

    full_flow(client, svc, sid)
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["question"] == "Which queue should we use?"
    assert summary["council_config"]["agents"]
    results = summary["execution_results"]
    assert isinstance(results, dict)
    assert set(results) >= {"council_name", "original_question", "execution_results"}
    assert results["original_question"] == "Which queue should we use?"
    assert isinstance(results["execution_results"], list) and results["execution_results"]
    assert results == client.get(f"/api/sessions/{sid}/results").json
    assert summary["peer_reviews"] and summary["aggregated_scores"]
    assert isinstance(summary["chairman_verdict"], str) and summary["chairman_verdict"]
    assert summary["log_file"] and summary["created_at"] and summary["updated_at"]
    assert summary["tokens"]["total_tokens"] > 0


def test_status_shape_and_progress_words(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    status = client.get(f"/api/sessions/{sid}/status").json
    assert set(status) >= {
        "status",
        "current_step",
        "execution_status",
        "review_status",
        "execution_error",
        "review_error",
        "progress",
        "tokens",
    }
    assert set(status["progress"]) == {"execution", "review"}
    put_council(client, sid)
    status = execute_and_wait(client, svc, sid)
    assert status["current_step"] == "execute"
    assert {status["execution_status"][a["name"]] for a in AGENTS} == {"Done"}
    assert "ALL" in status["execution_status"]
    status = review_and_wait(client, svc, sid)
    assert status["current_step"] == "review"
    assert {status["review_status"][a["name"]] for a in AGENTS} == {"Critique Complete"}
    assert status["progress"] == {"execution": 100, "review": 100}


def test_reviews_are_anonymised_and_skip_own_proposal(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    put_council(client, sid)
    execute_and_wait(client, svc, sid)
    review_and_wait(client, svc, sid)
    results = client.get(f"/api/sessions/{sid}/results").json["execution_results"]
    own = {r["agent_name"]: r["proposal_id"] for r in results}
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    review_logs = [e for e in logs if e["step"] == "review"]
    assert len(review_logs) == len(AGENTS)
    for entry in review_logs:
        prompt = "\n".join(m["content"] for m in entry["prompt"])
        assert "PROPOSAL #" in prompt
        assert f"PROPOSAL #{own[entry['agent']]} ===" not in prompt
        for other in AGENTS:
            if other["name"] != entry["agent"]:
                assert f"PROPOSAL #{own[other['name']]} ===" in prompt
    reviews = client.get(f"/api/sessions/{sid}/reviews").json["reviews"]
    for review in reviews:
        scored = {e["proposal_id"] for e in review["parsed"]["per_proposal"]}
        assert own[review["reviewer"]] not in scored


# -- forced re-runs ---------------------------------------------------------------------


def slow_runs(svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the offline provider takes a while, so a run can be looked at mid-way."""
    assert svc.provider.name == "offline"
    monkeypatch.setattr(svc.provider, "latency_ms", 400)


def _summary(client: FlaskClient, sid: str) -> dict[str, Any]:
    return client.get(f"/api/sessions/{sid}/summary").json


def test_forced_execute_clears_results_progress_and_downstream(
    client: FlaskClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = create(client)
    put_council(client, sid)
    full_flow(client, svc, sid)
    assert _summary(client, sid)["chairman_verdict"]

    slow_runs(svc, monkeypatch)
    r = client.post(f"/api/sessions/{sid}/execute?force=true")
    assert r.status_code == 200 and r.json == {"status": "accepted"}
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["status"] == "executing"
    assert status["progress"]["execution"] in (0, None)
    assert status["progress"]["review"] is None
    assert status["review_status"] == {}
    assert set(status["execution_status"]) == {"ALL", *(a["name"] for a in AGENTS)}
    assert "Done" not in status["execution_status"].values()
    summary = _summary(client, sid)
    for key in ("execution_results", "peer_reviews", "aggregated_scores", "chairman_verdict"):
        assert summary[key] is None, key
    assert_error(client.get(f"/api/sessions/{sid}/results"), 404)
    assert client.get(f"/api/sessions/{sid}/reviews").json == {
        "reviews": [],
        "aggregated_scores": {},
    }

    assert svc.workflow.join(sid, 30)
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["status"] == "execution_complete"
    assert status["progress"] == {"execution": 100, "review": None}
    assert status["review_status"] == {}
    summary = _summary(client, sid)
    assert summary["execution_results"]["execution_results"]
    assert summary["peer_reviews"] is None and summary["chairman_verdict"] is None
    # The review must be run again before a verdict.
    assert_error(client.post(f"/api/sessions/{sid}/synthesize"), 400)


def test_forced_review_clears_reviews_progress_and_verdict(
    client: FlaskClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = create(client)
    put_council(client, sid)
    full_flow(client, svc, sid)
    results_before = client.get(f"/api/sessions/{sid}/results").json

    slow_runs(svc, monkeypatch)
    r = client.post(f"/api/sessions/{sid}/peer_review?force=true")
    assert r.status_code == 200 and r.json == {"status": "accepted"}
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["status"] == "reviewing"
    assert status["progress"]["review"] in (0, None)
    assert status["progress"]["execution"] == 100
    assert "Critique Complete" not in status["review_status"].values()
    summary = _summary(client, sid)
    assert summary["peer_reviews"] is None and summary["aggregated_scores"] is None
    assert summary["chairman_verdict"] is None
    assert summary["execution_results"] == results_before

    assert svc.workflow.join(sid, 30)
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["status"] == "review_complete"
    assert status["progress"] == {"execution": 100, "review": 100}
    summary = _summary(client, sid)
    assert summary["peer_reviews"] and summary["chairman_verdict"] is None
    assert client.get(f"/api/sessions/{sid}/results").json == results_before


def test_forced_build_returns_new_council_and_clears_results(
    client: FlaskClient, svc: Services
) -> None:
    sid = create(client)
    put_council(client, sid)
    full_flow(client, svc, sid)
    # Without force the hand-made council comes back untouched.
    kept = client.post(f"/api/sessions/{sid}/build_council").json
    assert [a["name"] for a in kept["agents"]] == [a["name"] for a in AGENTS]
    assert client.get(f"/api/sessions/{sid}/results").status_code == 200

    r = client.post(f"/api/sessions/{sid}/build_council?force=true")
    assert r.status_code == 200
    built = r.json
    assert [a["name"] for a in built["agents"]] != [a["name"] for a in AGENTS]
    summary = _summary(client, sid)
    assert summary["council_config"]["agents"] == built["agents"]
    assert summary["status"] == "build_complete" and summary["current_step"] == "edit"
    for key in ("execution_results", "peer_reviews", "aggregated_scores", "chairman_verdict"):
        assert summary[key] is None, key
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["execution_status"] == {} and status["review_status"] == {}
    assert status["progress"] == {"execution": None, "review": None}
    assert_error(client.get(f"/api/sessions/{sid}/results"), 404)
    # Executing now runs the new council.
    status = execute_and_wait(client, svc, sid)
    assert set(status["execution_status"]) - {"ALL"} == {a["name"] for a in built["agents"]}


def test_put_council_clears_every_downstream_result(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    client.post(f"/api/sessions/{sid}/build_council")
    full_flow(client, svc, sid)
    tokens_before = client.get(f"/api/sessions/{sid}/status").json["tokens"]

    edited = [*AGENTS[:2], {"name": "Newcomer", "persona": "You are new here."}]
    council = put_council(client, sid, edited)
    assert [a["name"] for a in council["agents"]] == ["Economist", "Engineer", "Newcomer"]
    assert council["agents"][2]["reasoning_effort"] == "medium"
    assert council["agents"][2]["enable_web_search"] is False
    summary = _summary(client, sid)
    assert summary["status"] == "ready_to_execute" and summary["current_step"] == "edit"
    assert summary["council_config"]["agents"] == council["agents"]
    for key in ("execution_results", "peer_reviews", "aggregated_scores", "chairman_verdict"):
        assert summary[key] is None, key
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["execution_status"] == {} and status["review_status"] == {}
    assert status["progress"] == {"execution": None, "review": None}
    assert status["execution_error"] is None and status["review_error"] is None
    # Running totals survive an edit: money already spent stays spent.
    assert status["tokens"]["total_tokens"] == tokens_before["total_tokens"]
    assert_error(client.get(f"/api/sessions/{sid}/results"), 404)
    assert client.get(f"/api/sessions/{sid}/reviews").json["reviews"] == []
    r = client.post(f"/api/sessions/{sid}/execute")
    assert r.status_code == 200 and r.json == {"status": "accepted"}
    assert svc.workflow.join(sid, 30)


def test_put_council_keeps_name_and_optional_fields(client: FlaskClient) -> None:
    sid = create(client)
    built = client.post(f"/api/sessions/{sid}/build_council").json
    r = client.put(
        f"/api/sessions/{sid}/council",
        json={
            "agents": [
                {
                    "name": " Solo ",
                    "persona": "You are alone.",
                    "reasoning_effort": "high",
                    "enable_web_search": True,
                    "model": "gpt-4o",
                }
            ]
        },
    )
    assert r.status_code == 200, r.json
    council = r.json
    assert council["council_name"] == built["council_name"]
    assert council["agents"] == [
        {
            "name": "Solo",
            "persona": "You are alone.",
            "reasoning_effort": "high",
            "enable_web_search": True,
            "model": "gpt-4o",
        }
    ]
    assert _summary(client, sid)["council_config"]["agents"] == council["agents"]


# -- unexpected errors in the synchronous steps -----------------------------------------


class Boom(RuntimeError):
    pass


def test_unexpected_build_error_does_not_leave_session_busy(
    client: FlaskClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = create(client)
    real = svc.provider.complete

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise Boom("a bug")

    monkeypatch.setattr(svc.provider, "complete", broken)
    r = client.post(f"/api/sessions/{sid}/build_council")
    body = assert_error(r, 500, "internal_error")
    assert "Boom" not in body["detail"] and "a bug" not in r.get_data(as_text=True)
    summary = _summary(client, sid)
    assert summary["status"] == "build_error", summary["status"]
    assert summary["build_error"]
    assert summary["council_config"] is None
    # The session is usable again: a retry builds, and editing works meanwhile.
    monkeypatch.setattr(svc.provider, "complete", real)
    assert client.post(f"/api/sessions/{sid}/build_council").status_code == 200
    assert _summary(client, sid)["status"] == "build_complete"


def test_unexpected_synthesis_error_does_not_leave_session_busy(
    client: FlaskClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = create(client)
    put_council(client, sid)
    execute_and_wait(client, svc, sid)
    review_and_wait(client, svc, sid)
    real = svc.provider.complete

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise Boom("a bug")

    monkeypatch.setattr(svc.provider, "complete", broken)
    assert_error(client.post(f"/api/sessions/{sid}/synthesize"), 500, "internal_error")
    summary = _summary(client, sid)
    assert summary["status"] == "review_complete", summary["status"]
    assert summary["current_step"] == "review"
    assert summary["synthesis_error"]
    assert summary["peer_reviews"]
    monkeypatch.setattr(svc.provider, "complete", real)
    r = client.post(f"/api/sessions/{sid}/synthesize")
    assert r.status_code == 200 and r.json["verdict"]
    summary = _summary(client, sid)
    assert summary["status"] == "verdict_complete"
    assert not summary.get("synthesis_error")
