"""The council flow through the real ``openai`` client against a loopback fake server:
running cost totals, logs, and what provider failures do to a run."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from council_app.services import Services
from council_app.settings import Settings
from tests.api.api_helpers import (
    AGENTS,
    USAGE,
    SmartFake,
    assert_error,
    create,
    fake_llm_app,
    put_council,
    services_of,
    status,
    success,
)

# USD per million tokens, straight from the price table.
RATES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.0)}
LOG_KEYS = {
    "step",
    "agent",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "duration_ms",
    "error",
    "prompt",
    "response",
}


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def real(backend_settings: Settings) -> Iterator[tuple[FlaskClient, Services, SmartFake]]:
    with fake_llm_app(backend_settings) as (app, fake):
        yield app.test_client(), services_of(app), fake


def price(kind: str, model: str = "gpt-4o-mini") -> float:
    prompt, completion = USAGE[kind]
    rate_in, rate_out = RATES[model]
    return (prompt * rate_in + completion * rate_out) / 1_000_000


def run_step(client: FlaskClient, svc: Services, sid: str, step: str) -> dict:
    r = client.post(f"/api/sessions/{sid}/{step}")
    assert r.status_code == 200, r.json
    assert svc.workflow.join(sid, 30)
    return client.get(f"/api/sessions/{sid}/status").json


def builder_with_models() -> str:
    agents = [{**a, "reasoning_effort": "low", "enable_web_search": False} for a in AGENTS]
    agents[2]["model"] = "gpt-4o"  # one agent on a dearer model, priced separately
    return json.dumps({"council_name": "Priced", "strategy_summary": "s", "agents": agents})


def test_full_flow_through_real_client_sums_costs(real) -> None:
    client, svc, fake = real
    prompt, completion = USAGE["build"]
    fake.overrides[("build", "*")] = success(
        builder_with_models(), prompt_tokens=prompt, completion_tokens=completion
    )
    sid = create(client)
    council = client.post(f"/api/sessions/{sid}/build_council", data="null").json
    assert [a["name"] for a in council["agents"]] == [a["name"] for a in AGENTS]
    assert council["agents"][2]["model"] == "gpt-4o"
    assert council["provider"] == "openai"
    tokens = client.get(f"/api/sessions/{sid}/status").json["tokens"]
    assert tokens["total_cost_usd"] == pytest.approx(price("build"))
    listed = client.get("/api/sessions").json["sessions"][0]
    assert listed["last_cost_usd"] == pytest.approx(price("build"))

    status = run_step(client, svc, sid, "execute")
    assert status["status"] == "execution_complete", status
    expected_execute = 2 * price("execute") + price("execute", "gpt-4o")
    assert status["tokens"]["total_cost_usd"] == pytest.approx(price("build") + expected_execute)
    listed = client.get("/api/sessions").json["sessions"][0]
    assert listed["last_cost_usd"] == pytest.approx(status["tokens"]["total_cost_usd"])

    status = run_step(client, svc, sid, "peer_review")
    assert status["status"] == "review_complete", status
    assert set(status["review_status"].values()) == {"Critique Complete"}
    expected_review = 2 * price("review") + price("review", "gpt-4o")

    r = client.post(f"/api/sessions/{sid}/synthesize", data="null", content_type="application/json")
    assert r.status_code == 200, r.json
    assert r.json["verdict"].startswith("## Verdict")

    assert sorted(fake.calls) == sorted(
        [("build", "builder"), ("synthesize", "chairman")]
        + [(kind, a["name"]) for kind in ("execute", "review") for a in AGENTS]
    )
    # Each agent's calls went to its own model.
    models = {(k, a): r.body["model"] for (k, a), r in zip(fake.calls, fake.requests, strict=True)}
    assert models[("execute", "Skeptic")] == "gpt-4o"
    assert models[("review", "Skeptic")] == "gpt-4o"
    assert models[("execute", "Economist")] == "gpt-4o-mini"

    total = price("build") + expected_execute + expected_review + price("synthesize")
    tokens = client.get(f"/api/sessions/{sid}/status").json["tokens"]
    assert tokens["total_cost_usd"] == pytest.approx(total, rel=1e-6)
    calls_in = sum(USAGE[k][0] for k, _ in fake.calls)
    calls_out = sum(USAGE[k][1] for k, _ in fake.calls)
    assert tokens["input_tokens"] == calls_in
    assert tokens["output_tokens"] == calls_out
    assert tokens["total_tokens"] == calls_in + calls_out

    by_step = tokens["by_step"]
    assert set(by_step) == {"build", "execute", "review", "synthesize"}
    assert by_step["build"]["total_cost_usd"] == pytest.approx(price("build"))
    assert by_step["execute"]["total_cost_usd"] == pytest.approx(expected_execute)
    assert by_step["review"]["total_cost_usd"] == pytest.approx(expected_review)
    assert by_step["synthesize"]["total_cost_usd"] == pytest.approx(price("synthesize"))
    assert by_step["execute"]["input_tokens"] == 3 * USAGE["execute"][0]
    by_agent = tokens["by_agent"]
    assert set(by_agent) == {"builder", "chairman", *(a["name"] for a in AGENTS)}
    assert by_agent["Skeptic"]["total_cost_usd"] == pytest.approx(
        price("execute", "gpt-4o") + price("review", "gpt-4o")
    )
    assert sum(b["total_cost_usd"] for b in by_agent.values()) == pytest.approx(total)

    listed = client.get("/api/sessions").json["sessions"][0]
    assert listed["last_cost_usd"] == pytest.approx(total, rel=1e-6)
    assert listed["last_total_tokens"] == calls_in + calls_out
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["tokens"]["total_cost_usd"] == pytest.approx(total, rel=1e-6)
    assert summary["status"] == "verdict_complete"

    # Reviews from the real client are parsed with integer ids, also in per_proposal.
    reviews = client.get(f"/api/sessions/{sid}/reviews").json
    for review in reviews["reviews"]:
        assert all(type(e["proposal_id"]) is int for e in review["parsed"]["per_proposal"])
    assert set(reviews["aggregated_scores"]) == {"1", "2", "3"}
    assert all(len(v["scores"]) == 2 for v in reviews["aggregated_scores"].values())

    # One log line per call, with everything the old logs had.
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert len(logs) == len(fake.calls) == 8
    for entry in logs:
        assert set(entry) >= LOG_KEYS, entry.keys()
        assert entry["error"] is None
        assert entry["input_tokens"] == USAGE[entry["step"]][0]
        assert entry["output_tokens"] == USAGE[entry["step"]][1]
        assert entry["cost_usd"] == pytest.approx(price(entry["step"], entry["model"]))
        assert entry["duration_ms"] >= 0
        assert isinstance(entry["prompt"], list) and entry["prompt"][0]["role"] == "system"
        assert isinstance(entry["response"], str) and entry["response"]
    assert sum(e["cost_usd"] for e in logs) == pytest.approx(total)


def test_forced_rerun_adds_to_running_total(real) -> None:
    client, svc, _fake = real
    sid = create(client)
    put_council(client, sid)
    run_step(client, svc, sid, "execute")
    first = client.get(f"/api/sessions/{sid}/status").json["tokens"]["total_cost_usd"]
    assert first == pytest.approx(3 * price("execute"))
    r = client.post(f"/api/sessions/{sid}/execute?force=true")
    assert r.status_code == 200
    assert svc.workflow.join(sid, 30)
    tokens = client.get(f"/api/sessions/{sid}/status").json["tokens"]
    assert tokens["total_cost_usd"] == pytest.approx(6 * price("execute"))
    assert tokens["by_step"]["execute"]["input_tokens"] == 6 * USAGE["execute"][0]


def test_one_agent_failing_marks_it_failed_and_run_completes(real) -> None:
    client, svc, fake = real
    fake.overrides[("execute", "Engineer")] = status(500, "engine on fire")
    sid = create(client)
    put_council(client, sid)
    state = run_step(client, svc, sid, "execute")
    assert state["status"] == "execution_complete", state
    assert state["execution_status"]["Engineer"] == "Failed"
    assert state["execution_status"]["Economist"] == "Done"
    assert state["execution_status"]["Skeptic"] == "Done"
    assert state["execution_error"] is None
    results = client.get(f"/api/sessions/{sid}/results").json["execution_results"]
    by_name = {r["agent_name"]: r for r in results}
    assert by_name["Engineer"]["status"] == "error"
    assert (
        "500" in by_name["Engineer"]["error"] and "engine on fire" in by_name["Engineer"]["error"]
    )
    assert by_name["Economist"]["status"] == "success" and by_name["Economist"]["response"]
    # The failed call costs nothing and is logged with its error.
    assert state["tokens"]["total_cost_usd"] == pytest.approx(2 * price("execute"))
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    failed = [e for e in logs if e["agent"] == "Engineer"]
    assert len(failed) == 1 and "500" in failed[0]["error"]
    assert set(failed[0]) >= LOG_KEYS, failed[0].keys()
    assert failed[0]["cost_usd"] == 0 and failed[0]["response"] is None

    # Peer review goes on over the successful proposals only.
    state = run_step(client, svc, sid, "peer_review")
    assert state["status"] == "review_complete", state
    scores = client.get(f"/api/sessions/{sid}/reviews").json["aggregated_scores"]
    failed_id = str(by_name["Engineer"]["proposal_id"])
    assert failed_id not in scores and scores


def test_all_agents_failing_is_execution_error(real) -> None:
    client, svc, fake = real
    fake.overrides[("execute", "*")] = status(500, "everything is down")
    sid = create(client)
    put_council(client, sid)
    state = run_step(client, svc, sid, "execute")
    assert state["status"] == "execution_error", state
    assert set(state["execution_status"][a["name"]] for a in AGENTS) == {"Failed"}
    assert "everything is down" in state["execution_error"]
    for agent in AGENTS:
        assert agent["name"] in state["execution_error"]
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["execution_error"] == state["execution_error"]
    assert_error(client.post(f"/api/sessions/{sid}/peer_review"), 400)
    # A plain retry runs again (results exist but none succeeded? then force is the way).
    fake.overrides.clear()
    r = client.post(f"/api/sessions/{sid}/execute?force=true")
    assert r.status_code == 200
    assert svc.workflow.join(sid, 30)
    state = client.get(f"/api/sessions/{sid}/status").json
    assert state["status"] == "execution_complete" and state["execution_error"] is None


def test_malformed_review_is_a_parse_error_not_a_crash(real) -> None:
    client, svc, fake = real
    fake.overrides[("review", "Engineer")] = success("I liked them all, no JSON from me.")
    fake.overrides[("review", "Skeptic")] = success('{"per_proposal": "lots"}')
    sid = create(client)
    put_council(client, sid)
    run_step(client, svc, sid, "execute")
    state = run_step(client, svc, sid, "peer_review")
    assert state["status"] == "review_complete", state
    assert state["review_status"]["Economist"] == "Critique Complete"
    assert state["review_status"]["Engineer"] != "Critique Complete"
    reviews = {r["reviewer"]: r for r in client.get(f"/api/sessions/{sid}/reviews").json["reviews"]}
    for name in ("Engineer", "Skeptic"):
        assert reviews[name]["parse_error"], reviews[name]
        assert reviews[name]["error"]
        assert "parsed" not in reviews[name]
    assert reviews["Engineer"]["critique"] == "I liked them all, no JSON from me."
    assert reviews["Economist"]["parsed"]["per_proposal"]
    scores = client.get(f"/api/sessions/{sid}/reviews").json["aggregated_scores"]
    assert all(len(v["scores"]) == 1 for v in scores.values())
    r = client.post(f"/api/sessions/{sid}/synthesize")
    assert r.status_code == 200 and r.json["verdict"]


def test_every_review_malformed_is_review_error(real) -> None:
    client, svc, fake = real
    fake.overrides[("review", "*")] = success("no json")
    sid = create(client)
    put_council(client, sid)
    run_step(client, svc, sid, "execute")
    state = run_step(client, svc, sid, "peer_review")
    assert state["status"] == "review_error", state
    assert state["review_error"]
    assert len(client.get(f"/api/sessions/{sid}/reviews").json["reviews"]) == len(AGENTS)


@pytest.mark.parametrize(
    "failure",
    [status(500, "builder exploded"), success("Sorry, I cannot design a council.")],
    ids=["http_500", "not_json"],
)
def test_build_failure_is_recorded_and_not_cached(real, failure) -> None:
    client, _svc, fake = real
    fake.overrides[("build", "*")] = failure
    sid = create(client)
    body = assert_error(client.post(f"/api/sessions/{sid}/build_council"), 502)
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["status"] == "build_error"
    assert summary["council_config"] is None
    assert summary["build_error"] == body["detail"]
    assert summary["build_error"].startswith("Building the council failed")
    # Not cached: the next call asks the model again, and now succeeds.
    body = assert_error(client.post(f"/api/sessions/{sid}/build_council"), 502)
    assert fake.calls.count(("build", "builder")) == 2
    fake.overrides.clear()
    r = client.post(f"/api/sessions/{sid}/build_council")
    assert r.status_code == 200, r.json
    assert fake.calls.count(("build", "builder")) == 3
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["status"] == "build_complete"
    assert "build_error" not in summary or not summary["build_error"]
    assert summary["council_config"]["agents"]
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert [e["step"] for e in logs] == ["build"] * 3
    assert [bool(e["error"]) for e in logs][-1] is False


def test_chairman_failure_keeps_reviews_and_can_retry(real) -> None:
    client, svc, fake = real
    fake.overrides[("synthesize", "*")] = status(500, "chairman absent")
    sid = create(client)
    put_council(client, sid)
    run_step(client, svc, sid, "execute")
    run_step(client, svc, sid, "peer_review")
    body = assert_error(client.post(f"/api/sessions/{sid}/synthesize"), 502)
    assert "chairman absent" in body["detail"]
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["status"] == "review_complete" and summary["peer_reviews"]
    assert summary["chairman_verdict"] is None
    fake.overrides.clear()
    r = client.post(f"/api/sessions/{sid}/synthesize")
    assert r.status_code == 200 and r.json["verdict"]
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "verdict_complete"


def test_health_says_which_provider(real) -> None:
    client, _, _ = real
    sid = create(client)
    assert client.get(f"/api/sessions/{sid}/summary").json["provider"] == "openai"


def test_rate_limited_call_is_retried_and_counted_once(backend_settings: Settings) -> None:
    with fake_llm_app(backend_settings, llm_max_retries=2) as (app, fake):
        client, svc = app.test_client(), services_of(app)
        answered: list[int] = []

        def limited_once(body: object) -> object:
            answered.append(1)
            if len(answered) == 1:
                return status(429, "slow down", retry_after_ms="10")
            prompt, completion = USAGE["execute"]
            return success(
                "Fine after all.\n\nTL;DR: fine.",
                prompt_tokens=prompt,
                completion_tokens=completion,
            )

        fake.overrides[("execute", "Engineer")] = limited_once
        sid = create(client)
        put_council(client, sid)
        state = run_step(client, svc, sid, "execute")
        assert state["status"] == "execution_complete"
        assert state["execution_status"]["Engineer"] == "Done"
        assert len(answered) == 2  # the client retried the 429
        assert state["tokens"]["total_cost_usd"] == pytest.approx(3 * price("execute"))
        logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
        assert [e["agent"] for e in logs].count("Engineer") == 1
        results = client.get(f"/api/sessions/{sid}/results").json["execution_results"]
        engineer = next(r for r in results if r["agent_name"] == "Engineer")
        assert engineer["tldr"] == "fine." and engineer["status"] == "success"


def test_chairman_model_is_used_and_priced(backend_settings: Settings) -> None:
    with fake_llm_app(backend_settings, chairman_model="gpt-4o") as (app, fake):
        client, svc = app.test_client(), services_of(app)
        sid = create(client)
        put_council(client, sid)
        run_step(client, svc, sid, "execute")
        run_step(client, svc, sid, "peer_review")
        assert client.post(f"/api/sessions/{sid}/synthesize").status_code == 200
        chair_models = [
            r.body["model"]
            for (kind, _), r in zip(fake.calls, fake.requests, strict=True)
            if kind == "synthesize"
        ]
        assert chair_models == ["gpt-4o"]
        tokens = client.get(f"/api/sessions/{sid}/status").json["tokens"]
        assert tokens["by_step"]["synthesize"]["total_cost_usd"] == pytest.approx(
            price("synthesize", "gpt-4o")
        )
        assert tokens["by_agent"]["chairman"]["total_cost_usd"] == pytest.approx(
            price("synthesize", "gpt-4o")
        )


def test_running_totals_continue_from_older_token_shapes(real) -> None:
    client, svc, _fake = real
    sid = create(client)
    put_council(client, sid)
    legacy = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "total_cost_usd": "0.25",  # no total_tokens; the cost stored as a string
        "by_step": {"execute": {"total_cost_usd": 0.2}},  # a bucket without token counts
    }

    def older(state: dict) -> None:
        state["tokens"] = legacy

    svc.states.update(sid, older)
    state = run_step(client, svc, sid, "execute")
    assert state["status"] == "execution_complete", state
    tokens = state["tokens"]
    assert tokens["total_cost_usd"] == pytest.approx(0.25 + 3 * price("execute"))
    assert tokens["input_tokens"] == 1000 + 3 * USAGE["execute"][0]
    assert tokens["total_tokens"] == 1500 + 3 * sum(USAGE["execute"])
    assert tokens["by_step"]["execute"]["total_cost_usd"] == pytest.approx(
        0.2 + 3 * price("execute")
    )
    assert tokens["by_step"]["execute"]["input_tokens"] == 3 * USAGE["execute"][0]


def test_editing_the_council_after_a_failed_build_clears_the_error(real) -> None:
    client, _svc, fake = real
    fake.overrides[("build", "*")] = status(500, "builder exploded")
    sid = create(client)
    assert_error(client.post(f"/api/sessions/{sid}/build_council"), 502)
    assert client.get(f"/api/sessions/{sid}/summary").json["build_error"]
    put_council(client, sid)
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["status"] == "ready_to_execute"
    assert not summary.get("build_error")
