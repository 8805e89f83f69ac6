"""Streaming, optional parameters, bounded retries and gateway costs, against the loopback
Chat Completions fake (server-sent events as OpenAI, vLLM and LiteLLM send them)."""

from __future__ import annotations

import threading
import time

import pytest

from council_app.providers import ProviderCancelled, ProviderError
from council_app.providers.pricing import PriceTable
from tests.providers.fake_openai import refuse_param, status, success

MESSAGES = [{"role": "user", "content": "Say hello."}]
LONG = "The council streams this answer in many small pieces so it can be read live."


def test_stream_hands_out_growing_text_and_final_usage(fake_server, make_openai):
    fake_server.push(success(LONG, prompt_tokens=30, completion_tokens=20))
    seen: list[str] = []

    result = make_openai().complete(
        MESSAGES, model="gpt-4o-mini", task="execute", on_delta=seen.append
    )

    body = fake_server.chat_requests()[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert result.text == LONG
    assert (result.input_tokens, result.output_tokens, result.usage_known) == (30, 20, True)
    assert seen and seen[-1] == LONG
    assert all(LONG.startswith(s) for s in seen)  # each call: the text so far
    assert PriceTable().cost_of(result) == pytest.approx((30 * 0.15 + 20 * 0.60) / 1e6)


def test_stream_without_usage_is_an_unknown_cost(fake_server, make_openai):
    fake_server.push(success("no usage at the end", stream_usage=False))

    result = make_openai().complete(MESSAGES, model="gpt-4o-mini", task="execute")

    assert result.text == "no usage at the end"
    assert result.usage_known is False
    assert PriceTable().cost_of(result) is None  # never silently $0


def test_non_streaming_mode_still_calls_on_delta(fake_server, make_openai):
    fake_server.push(success("whole answer"))
    seen: list[str] = []

    result = make_openai(stream=False).complete(
        MESSAGES, model="m", task="execute", on_delta=seen.append
    )

    assert "stream" not in fake_server.chat_requests()[0].body
    assert result.text == "whole answer" and seen == ["whole answer"]


@pytest.mark.parametrize("stream", [True, False])
def test_litellm_cost_header_is_the_cost(fake_server, make_openai, stream):
    fake_server.push(success("priced by the proxy", headers={"x-litellm-response-cost": "0.00042"}))

    result = make_openai(stream=stream).complete(MESSAGES, model="my-alias", task="execute")

    assert result.gateway_cost_usd == pytest.approx(0.00042)
    assert PriceTable().cost_of(result) == pytest.approx(0.00042)  # unknown model, known cost


def test_reasoning_effort_is_not_sent_to_models_that_do_not_reason(fake_server, make_openai):
    fake_server.default = success("ok")
    provider = make_openai()

    provider.complete(MESSAGES, model="gpt-4o-mini", task="review", reasoning_effort="high")
    provider.complete(MESSAGES, model="gpt-5.1", task="review", reasoning_effort="high")

    first, second = fake_server.chat_requests()
    assert "reasoning_effort" not in first.body  # the catalogue: gpt-4o-mini does not reason
    assert second.body["reasoning_effort"] == "high"


def test_refused_parameter_is_dropped_once_and_remembered(fake_server, make_openai):
    fake_server.push(refuse_param("reasoning_effort"), success("first"), success("second"))
    provider = make_openai(max_retries=0)  # the drop is not a retry of a failure

    first = provider.complete(MESSAGES, model="my-gateway-model", task="x", reasoning_effort="low")
    second = provider.complete(MESSAGES, model="my-gateway-model", task="x", reasoning_effort="low")

    bodies = [r.body for r in fake_server.chat_requests()]
    assert len(bodies) == 3
    assert bodies[0]["reasoning_effort"] == "low"
    assert "reasoning_effort" not in bodies[1] and "reasoning_effort" not in bodies[2]
    assert first.text == "first" and first.dropped_params == ("reasoning_effort",)
    assert "refused 'reasoning_effort'" in first.retries[0]["reason"]
    assert second.dropped_params == ("reasoning_effort",) and second.retries == []


def test_refused_stream_options_falls_back_to_plain_streaming(fake_server, make_openai):
    fake_server.push(
        refuse_param("stream_options", "Unrecognized request argument: stream_options"),
        success("streamed anyway", stream_usage=False),
    )

    result = make_openai(max_retries=0).complete(MESSAGES, model="old-vllm", task="x")

    second = fake_server.chat_requests()[1].body
    assert second["stream"] is True and "stream_options" not in second
    assert result.text == "streamed anyway" and result.usage_known is False


def test_other_400s_are_not_retried(fake_server, make_openai):
    fake_server.push(status(400, "messages must not be empty"))

    with pytest.raises(ProviderError, match=r"HTTP 400 .*messages must not be empty"):
        make_openai(max_retries=2).complete(MESSAGES, model="m", task="x", reasoning_effort="low")

    assert len(fake_server.chat_requests()) == 1


def test_retry_after_is_honoured_and_recorded(fake_server, make_openai):
    fake_server.push(status(429, "slow down", retry_after="0.4"), success("after waiting"))

    result = make_openai(max_retries=2).complete(MESSAGES, model="gpt-4o", task="execute")

    first, second = fake_server.chat_requests()
    assert second.received_at - first.received_at >= 0.35
    [retry] = result.retries
    assert retry["attempt"] == 1 and retry["wait_s"] == pytest.approx(0.4)
    assert "HTTP 429" in retry["reason"] and "slow down" in retry["reason"]


def test_retry_after_beyond_the_deadline_gives_up_at_once(fake_server, make_openai):
    fake_server.push(status(429, "come back in a minute", retry_after="60"))

    started = time.monotonic()
    with pytest.raises(ProviderError, match="HTTP 429") as caught:
        make_openai(max_retries=2).complete(
            MESSAGES, model="gpt-4o", task="execute", deadline=time.monotonic() + 5
        )

    assert time.monotonic() - started < 20  # not the 60 s asked for
    assert len(fake_server.chat_requests()) == 1
    assert caught.value.retries == []
    assert "asked to wait 60 s" in str(caught.value)


def test_retry_after_longer_than_allowed_is_not_cut_short(fake_server, make_openai):
    fake_server.push(status(429, "quota", retry_after="120"), success("never asked"))

    with pytest.raises(ProviderError, match="asked to wait 120 s"):
        make_openai(max_retries=2).complete(MESSAGES, model="gpt-4o", task="execute")

    assert len(fake_server.chat_requests()) == 1  # no early retry the server would refuse


def test_failed_retries_travel_with_the_error(fake_server, make_openai):
    fake_server.default = status(503, "overloaded", retry_after="0.01")

    with pytest.raises(ProviderError, match="gave up after 2 retries") as caught:
        make_openai(max_retries=2).complete(MESSAGES, model="gpt-4o", task="execute")

    assert len(fake_server.chat_requests()) == 3
    assert [r["attempt"] for r in caught.value.retries] == [1, 2]


def test_cancel_stops_a_stream_midway(fake_server, make_openai):
    fake_server.push(success(LONG))
    cancel = threading.Event()
    seen: list[str] = []

    def first_piece(text: str) -> None:
        seen.append(text)
        cancel.set()

    with pytest.raises(ProviderCancelled):
        make_openai().complete(
            MESSAGES, model="m", task="execute", on_delta=first_piece, cancel=cancel
        )

    assert len(seen) == 1 and len(seen[0]) < len(LONG)


def test_cancel_during_a_retry_wait_returns_at_once(fake_server, make_openai):
    fake_server.default = status(503, "down", retry_after="30")
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()

    started = time.monotonic()
    with pytest.raises(ProviderCancelled):
        make_openai(max_retries=2).complete(MESSAGES, model="m", task="execute", cancel=cancel)

    assert time.monotonic() - started < 20  # not the 30 s asked for
    assert len(fake_server.chat_requests()) == 1
