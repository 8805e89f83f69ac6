"""GET /api/models, models refused at PUT /council, the per-session chairman, web search and
unknown costs as a user meets them, through the real client against the loopback fake."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from council_app.services import Services
from council_app.settings import Settings
from tests.api.api_helpers import (
    AGENTS,
    SmartFake,
    built_app,
    create,
    execute_and_wait,
    fake_llm_app,
    put_council,
    review_and_wait,
    services_of,
)
from tests.providers.fake_openai import success


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def real(backend_settings: Settings) -> Iterator[tuple[FlaskClient, Services, SmartFake]]:
    with fake_llm_app(backend_settings) as (app, fake):
        fake.models = ["gpt-4o-mini", "gpt-5.1", "llama3.2"]
        yield app.test_client(), services_of(app), fake


def test_models_lists_what_the_provider_serves(real) -> None:
    client, _, fake = real

    body = client.get("/api/models").json

    assert body["available"] is True and body["source"] == "provider"
    assert body["models"] == ["gpt-4o-mini", "gpt-5.1", "llama3.2"]
    assert body["default_model"] == "gpt-4o-mini"
    assert body["provider"]["offline"] is False
    assert body["provider"]["web_search"] == {"available": False, "via": None}
    client.get("/api/models")
    assert sum(1 for r in fake.requests if r.path == "/v1/models") == 1  # cached


def test_put_council_refuses_a_model_the_provider_does_not_serve(real) -> None:
    client, _, _ = real
    sid = create(client)
    agents = [dict(a) for a in AGENTS]
    agents[1]["model"] = "gpt-4o-mini-typo"

    r = client.put(
        f"/api/sessions/{sid}/council",
        json={"agents": agents, "chairman_model": "gpt-9"},
    )

    assert r.status_code == 422, r.json
    fields = {e["field"]: e["message"] for e in r.json["errors"]}
    assert "gpt-4o-mini-typo" in fields["agents[1].model"]
    assert "GET /api/models" in fields["agents[1].model"]
    assert "gpt-9" in fields["chairman_model"]
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "idle"  # unchanged


def test_the_session_chooses_its_chairman(real) -> None:
    client, svc, fake = real
    sid = create(client)
    agents = [{**a, "model": "llama3.2"} for a in AGENTS]
    r = client.put(
        f"/api/sessions/{sid}/council", json={"agents": agents, "chairman_model": "gpt-5.1"}
    )
    assert r.status_code == 200, r.json
    assert r.json["chairman_model"] == "gpt-5.1"
    execute_and_wait(client, svc, sid)
    review_and_wait(client, svc, sid)

    r = client.post(f"/api/sessions/{sid}/synthesize")

    assert r.status_code == 200, r.json
    models = {
        (kind, agent): req.body["model"]
        for (kind, agent), req in zip(fake.calls, fake.chat_requests(), strict=True)
    }
    assert models[("synthesize", "chairman")] == "gpt-5.1"
    assert models[("execute", "Economist")] == "llama3.2"


def test_a_provider_without_a_model_list_refuses_nothing(backend_settings: Settings) -> None:
    with fake_llm_app(backend_settings) as (app, fake):
        assert fake.models is None
        client = app.test_client()
        sid = create(client)

        council = put_council(client, sid, [{**AGENTS[0], "model": "anything-goes"}])

        assert council["agents"][0]["model"] == "anything-goes"
        assert client.get("/api/models").json["available"] is False


def test_unknown_price_is_shown_as_unknown_not_zero(backend_settings: Settings) -> None:
    with fake_llm_app(backend_settings, council_model="my-local-model") as (app, fake):
        client, svc = app.test_client(), services_of(app)
        sid = create(client)
        put_council(client, sid)
        fake.overrides[("execute", "Economist")] = success(
            "Priced by the gateway.\n\nTL;DR: yes.", headers={"x-litellm-response-cost": "0.002"}
        )

        execute_and_wait(client, svc, sid)

        tokens = client.get(f"/api/sessions/{sid}/summary").json["tokens"]
        assert tokens["cost_known"] is False and tokens["unpriced_calls"] == 2
        assert tokens["total_cost_usd"] == pytest.approx(0.002)  # the part that is known
        assert tokens["by_agent"]["Economist"]["cost_known"] is True
        assert tokens["by_agent"]["Skeptic"]["cost_known"] is False
        assert tokens["by_step"]["execute"]["unpriced_calls"] == 2
        logs = client.get(f"/api/sessions/{sid}/logs").json
        entries = logs["logs"]
        by_agent = {e["agent"]: e for e in entries}
        assert by_agent["Skeptic"]["cost_usd"] is None
        assert by_agent["Skeptic"]["cost_known"] is False
        assert by_agent["Economist"]["cost_usd"] == pytest.approx(0.002)


def test_offline_app_says_answers_are_canned_and_fails_named_members(
    backend_settings: Settings,
) -> None:
    with built_app(backend_settings, offline_fail_members=("Engineer",)) as app:
        client, svc = app.test_client(), services_of(app)
        body = client.get("/api/models").json
        assert body["provider"]["offline"] is True and "canned" in body["provider"]["hint"]
        assert body["source"] == "offline"
        sid = create(client)
        agents = [dict(a) for a in AGENTS]
        agents[0]["enable_web_search"] = True
        put_council(client, sid, agents)

        execute_and_wait(client, svc, sid)

        results = client.get(f"/api/sessions/{sid}/summary").json["execution_results"]
        by_name = {r["agent_name"]: r for r in results["execution_results"]}
        assert by_name["Engineer"]["status"] == "error"
        assert "fails on purpose" in by_name["Engineer"]["error"]
        assert by_name["Economist"]["status"] == "success"
        [search] = by_name["Economist"]["tools_used"]
        assert search["tool"] == "web_search" and search["urls"]
        assert by_name["Skeptic"]["tools_used"] == []


def test_log_records_retries(backend_settings: Settings) -> None:
    from tests.providers.fake_openai import status

    with fake_llm_app(backend_settings, llm_max_retries=2) as (app, fake):
        client, svc = app.test_client(), services_of(app)
        sid = create(client)
        put_council(client, sid, [AGENTS[0]])
        answers = [status(503, "busy", retry_after="0.01"), success("Fine.\n\nTL;DR: fine.")]
        fake.overrides[("execute", "Economist")] = lambda _body: answers.pop(0)

        execute_and_wait(client, svc, sid)

        logs = client.get(f"/api/sessions/{sid}/logs").json
        entries = logs["logs"]
        [entry] = [e for e in entries if e["step"] == "execute"]
        assert entry["error"] is None
        assert len(entry["retries"]) == 1 and "HTTP 503" in entry["retries"][0]["reason"]
        assert json.dumps(entry)  # plain JSON all the way down
