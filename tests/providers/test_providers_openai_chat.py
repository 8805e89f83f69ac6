"""The real OpenAIChatProvider against a loopback Chat Completions server."""

from __future__ import annotations

import socket
import time

import openai
import pytest

from council_app.providers import (
    OfflineProvider,
    OpenAIChatProvider,
    ProviderError,
    make_provider,
)
from council_app.workflow.parsing import ParseError, parse_review
from council_app.workflow.prompts import review_messages
from tests.providers.fake_openai import hang, invalid_json, status, success

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]


def test_success_returns_text_tokens_and_model(fake_server, make_openai):
    fake_server.push(success("  Hello, council.  ", prompt_tokens=42, completion_tokens=9))

    result = make_openai().complete(MESSAGES, model="gpt-4o-mini", task="execute")

    assert result.text == "Hello, council."
    assert (result.input_tokens, result.output_tokens) == (42, 9)
    assert result.model == "gpt-4o-mini"
    assert result.provider == "openai"
    assert result.duration_ms > 0
    [request] = fake_server.chat_requests()
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"] == MESSAGES
    assert request.headers["authorization"] == "Bearer test-key"


def test_json_mode_and_reasoning_effort_are_sent(fake_server, make_openai):
    fake_server.push(success('{"ok": true}'))

    make_openai().complete(
        MESSAGES, model="gpt-5.1", task="review", reasoning_effort="high", json_mode=True
    )

    body = fake_server.chat_requests()[0].body
    assert body["response_format"] == {"type": "json_object"}
    assert body["reasoning_effort"] == "high"


@pytest.mark.parametrize("effort", [None, "none"])
def test_optional_fields_are_omitted_by_default(fake_server, make_openai, effort):
    fake_server.push(success("hi"))

    make_openai().complete(MESSAGES, model="llama3", task="execute", reasoning_effort=effort)

    body = fake_server.chat_requests()[0].body
    assert "reasoning_effort" not in body
    assert "response_format" not in body


def test_missing_usage_counts_as_zero_tokens(fake_server, make_openai):
    fake_server.push(success("no usage here", usage=False))

    result = make_openai().complete(MESSAGES, model="local-model", task="execute")

    assert (result.input_tokens, result.output_tokens) == (0, 0)
    assert result.text == "no usage here"


def test_rate_limit_is_retried_with_backoff(fake_server, make_openai):
    fake_server.push(status(429, "slow down"), success("after the rate limit"))

    result = make_openai(max_retries=2).complete(MESSAGES, model="gpt-4o", task="execute")

    assert result.text == "after the rate limit"
    first, second = fake_server.chat_requests()
    # Retry-After: 0 makes the client fall back to its exponential backoff (>= 0.375 s).
    assert second.received_at - first.received_at >= 0.3


@pytest.mark.parametrize("max_retries", [0, 2])
def test_persistent_server_error_gives_up_after_max_retries(fake_server, make_openai, max_retries):
    fake_server.default = status(500, "upstream exploded", retry_after_ms="5")

    with pytest.raises(ProviderError) as caught:
        make_openai(max_retries=max_retries).complete(MESSAGES, model="gpt-4o", task="execute")

    assert len(fake_server.chat_requests()) == max_retries + 1
    message = str(caught.value)
    assert "HTTP 500 Internal Server Error" in message
    assert "upstream exploded" in message
    assert "gpt-4o" in message
    assert isinstance(caught.value.__cause__, openai.InternalServerError)


def test_client_errors_are_not_retried(fake_server, make_openai):
    fake_server.push(status(401, "Incorrect API key provided"))

    with pytest.raises(ProviderError, match=r"HTTP 401 Unauthorized .*Incorrect API key"):
        make_openai(max_retries=3).complete(MESSAGES, model="gpt-4o", task="execute")

    assert len(fake_server.chat_requests()) == 1


def test_timeout_raises_provider_error(fake_server, make_openai):
    fake_server.push(hang())
    provider = make_openai(timeout_s=0.5, max_retries=0)

    started = time.monotonic()
    with pytest.raises(ProviderError, match=r"timed out after 0\.5 s") as caught:
        provider.complete(MESSAGES, model="gpt-4o", task="execute")

    assert time.monotonic() - started < 4
    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
    assert len(fake_server.chat_requests()) == 1


def test_timeout_is_retried(fake_server, make_openai):
    fake_server.push(hang(), success("second attempt"))

    result = make_openai(timeout_s=0.5, max_retries=1).complete(
        MESSAGES, model="gpt-4o", task="execute"
    )

    assert result.text == "second attempt"
    assert len(fake_server.chat_requests()) == 2


def test_malformed_json_body_raises_provider_error(fake_server, make_openai):
    fake_server.push(invalid_json())

    with pytest.raises(ProviderError, match="malformed response"):
        make_openai().complete(MESSAGES, model="gpt-4o", task="execute")


@pytest.mark.parametrize("content", [None, "", "   \n"])
def test_empty_content_raises_provider_error(fake_server, make_openai, content):
    fake_server.push(success(content))

    with pytest.raises(ProviderError, match="empty answer"):
        make_openai().complete(MESSAGES, model="gpt-4o", task="execute")


def test_connection_refused_raises_provider_error():
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAIChatProvider(
        api_key="k", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=2, max_retries=0
    )
    try:
        with pytest.raises(ProviderError, match="cannot connect"):
            provider.complete(MESSAGES, model="gpt-4o", task="execute")
    finally:
        provider.close()


def test_non_json_review_output_fails_to_parse(fake_server, make_openai):
    fake_server.push(success("Honestly, proposal 1 is the best. Great work everyone!"))
    messages = review_messages(
        {"name": "Critic", "persona": "You are a critic."}, "Q?", [(1, "A"), (2, "B")]
    )

    result = make_openai().complete(messages, model="gpt-4o", task="review", json_mode=True)

    assert fake_server.chat_requests()[0].body["response_format"] == {"type": "json_object"}
    with pytest.raises(ParseError, match="no JSON object"):
        parse_review(result.text, [1, 2])


@pytest.mark.parametrize("key", [None, ""])
def test_make_provider_without_key_or_base_url_is_offline(key):
    provider = make_provider(api_key=key, base_url=None, offline_latency_ms=7)

    assert isinstance(provider, OfflineProvider)
    assert provider.name == "offline"
    assert provider.latency_ms == 7


def test_base_url_without_key_talks_to_a_local_server(fake_server):
    """Ollama, vLLM and LM Studio need no key: a placeholder is sent, not the offline stand-in."""
    fake_server.push(success("from the local model"))
    provider = make_provider(api_key=None, base_url=fake_server.base_url, max_retries=0)
    try:
        assert isinstance(provider, OpenAIChatProvider)
        assert provider.complete(MESSAGES, model="llama3.2", task="execute").text == (
            "from the local model"
        )
        assert fake_server.chat_requests()[0].headers["authorization"] == "Bearer not-needed"
    finally:
        provider.close()


def test_make_provider_with_key_talks_to_base_url(fake_server):
    fake_server.push(success("via factory"))
    provider = make_provider(api_key="sk-x", base_url=fake_server.base_url, max_retries=0)
    try:
        assert isinstance(provider, OpenAIChatProvider)
        assert provider.max_retries == 0
        assert provider.complete(MESSAGES, model="m", task="build").text == "via factory"
    finally:
        provider.close()
