"""Fixtures for provider tests: a loopback fake Chat Completions server and real clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from council_app.providers.openai_chat import OpenAIChatProvider
from tests.providers.fake_openai import FakeOpenAIServer

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment would intercept loopback traffic to the fake server."""
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def make_openai(fake_server: FakeOpenAIServer) -> Iterator[Callable[..., OpenAIChatProvider]]:
    """Build real ``OpenAIChatProvider``s pointed at the fake server; closed at teardown."""
    made: list[OpenAIChatProvider] = []

    def make(**overrides: object) -> OpenAIChatProvider:
        kwargs: dict[str, object] = {
            "api_key": "test-key",
            "base_url": fake_server.base_url,
            "timeout_s": 30.0,  # first calls build the client's types: slow on a loaded machine
            "max_retries": 2,
        }
        kwargs.update(overrides)
        provider = OpenAIChatProvider(**kwargs)  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()
