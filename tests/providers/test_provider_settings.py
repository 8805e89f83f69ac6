"""The provider settings: bounded defaults and how each variable is read."""

from __future__ import annotations

import pytest

from council_app.settings import ConfigError, load_settings


def test_defaults_bound_a_hung_gateway_to_seconds_not_minutes():
    s = load_settings({})
    assert (s.llm_timeout_s, s.llm_connect_timeout_s, s.llm_max_retries) == (60.0, 5.0, 2)
    assert s.llm_stream is True
    assert s.searxng_url is None and s.tavily_api_key is None
    assert s.models_cache_s == 300
    assert s.offline_fail_members == ()


def test_provider_variables_are_read():
    s = load_settings(
        {
            "LLM_TIMEOUT_S": "12.5",
            "LLM_CONNECT_TIMEOUT_S": "2",
            "LLM_MAX_RETRIES": "0",
            "LLM_STREAM": "no",
            "SEARXNG_URL": " http://127.0.0.1:8888 ",
            "TAVILY_API_KEY": "tvly-secret",
            "MODELS_CACHE_S": "0",
            "OFFLINE_FAIL_MEMBERS": "Risk Manager, ,CFO",
        }
    )
    assert (s.llm_timeout_s, s.llm_connect_timeout_s, s.llm_max_retries) == (12.5, 2.0, 0)
    assert s.llm_stream is False
    assert s.searxng_url == "http://127.0.0.1:8888"
    assert s.models_cache_s == 0
    assert s.offline_fail_members == ("Risk Manager", "CFO")
    assert "tvly-secret" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value"),
    [("LLM_CONNECT_TIMEOUT_S", "0"), ("LLM_STREAM", "maybe"), ("MODELS_CACHE_S", "-1")],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
