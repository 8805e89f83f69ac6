"""The provider's model list: asked over ``GET /models``, cached, and never blocking when
the endpoint cannot say; the offline stand-in's deliberate failures and streaming."""

from __future__ import annotations

import threading

import pytest

from council_app.providers import OfflineProvider, ProviderCancelled, ProviderError
from council_app.providers.models import ModelDirectory
from council_app.workflow.costs import CostMeter

MESSAGES = [{"role": "user", "content": "<question>\nShould we migrate?\n</question>"}]


def _gets(fake_server) -> int:
    return sum(1 for r in fake_server.requests if r.path == "/v1/models")


def test_model_list_is_fetched_once_within_the_cache_time(fake_server, make_openai):
    fake_server.models = ["gpt-4o-mini", "gpt-5.1", "llama3.2"]
    directory = ModelDirectory(make_openai(), ttl_s=300)

    first = directory.current()
    assert directory.is_known("llama3.2") is True
    assert directory.is_known("gpt-4o-typo") is False

    assert first.models == ["gpt-4o-mini", "gpt-5.1", "llama3.2"]
    assert first.source == "provider"
    assert _gets(fake_server) == 1  # three lookups, one request
    directory.current(refresh=True)
    assert _gets(fake_server) == 2


def test_models_that_cannot_chat_are_not_offered(fake_server, make_openai):
    fake_server.models = ["gpt-4o-mini", "text-embedding-3-small", "whisper-1", "tts-1", "mine"]

    directory = ModelDirectory(make_openai())

    assert directory.current().models == ["gpt-4o-mini", "mine"]
    assert directory.is_known("text-embedding-3-small") is False


def test_expired_cache_asks_again(fake_server, make_openai):
    fake_server.models = ["a"]
    directory = ModelDirectory(make_openai(), ttl_s=0)

    directory.current()
    fake_server.models = ["a", "b"]

    assert directory.current().models == ["a", "b"]


def test_endpoint_without_a_model_list_refuses_nothing(fake_server, make_openai):
    fake_server.models = None  # GET /v1/models answers 404

    directory = ModelDirectory(make_openai(), ttl_s=300)
    found = directory.current()

    assert found.models is None and found.source == "unavailable"
    assert "404" in (found.error or "")
    assert directory.is_known("anything") is None


def test_offline_stand_in_has_no_list_and_accepts_any_model():
    directory = ModelDirectory(OfflineProvider())

    assert directory.current().source == "offline"
    assert directory.is_known("whatever") is None


def test_offline_fails_named_members_on_purpose():
    offline = OfflineProvider(fail_members=frozenset({"Risk Manager"}))
    as_member = [
        {"role": "system", "content": 'You are careful.\n\nYou are speaking as "risk manager"'},
        *MESSAGES,
    ]
    marked = [{"role": "system", "content": "You are a critic. [offline-fail]"}, *MESSAGES]

    with pytest.raises(ProviderError, match="fails on purpose"):
        offline.complete(as_member, model="m", task="execute")
    with pytest.raises(ProviderError, match="fails on purpose"):
        offline.complete(marked, model="m", task="review")
    assert offline.complete(MESSAGES, model="m", task="execute").text


def test_offline_streams_and_can_be_cancelled():
    seen: list[str] = []
    result = OfflineProvider().complete(MESSAGES, model="m", task="execute", on_delta=seen.append)
    assert len(seen) > 1 and seen[-1] == result.text
    assert all(result.text.startswith(s) for s in seen)

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ProviderCancelled):
        OfflineProvider(latency_ms=50).complete(MESSAGES, model="m", task="x", cancel=cancel)


def test_cost_meter_keeps_unknown_costs_unknown():
    meter = CostMeter(None)
    meter.add("execute", "A", 100, 10, 0.5)
    totals = meter.add("execute", "B", 200, 20, None)

    assert totals["total_tokens"] == 330
    assert totals["total_cost_usd"] == 0.5  # the known part, flagged as partial
    assert totals["cost_known"] is False and totals["unpriced_calls"] == 1
    assert totals["by_agent"]["A"]["cost_known"] is True
    assert totals["by_agent"]["B"] == {
        "input_tokens": 200,
        "output_tokens": 20,
        "total_tokens": 220,
        "total_cost_usd": 0.0,
        "cost_known": False,
        "unpriced_calls": 1,
    }
    assert totals["by_step"]["execute"]["cost_known"] is False
    # A reloaded meter remembers that part of the cost is unknown.
    assert CostMeter(totals).snapshot()["cost_known"] is False
    assert CostMeter({"total_cost_usd": 1.0}).snapshot()["cost_known"] is True
