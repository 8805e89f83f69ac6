"""Web search per call, each protocol against a loopback server that speaks it: OpenAI's
Responses API (hosted web_search tool), OpenRouter's web plugin, and standard tool calling
answered by a SearxNG-shaped search service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from council_app.providers import OfflineProvider, provider_info
from council_app.providers.openai_chat import WEB_SEARCH_TOOL, flavour_of
from council_app.providers.search import SearchError, SearxngSearch, TavilySearch, make_search
from tests.providers.fake_openai import FakeSearxng, FakeTavily, success, tool_call, url_citation

MESSAGES = [
    {"role": "system", "content": "You are a researcher."},
    {"role": "user", "content": "What changed in PostgreSQL 17?"},
]
PG_DOCS = "https://www.postgresql.org/docs/17/release-17.html"
PG_NEWS = "https://www.postgresql.org/about/news/postgresql-17-released-2936/"


@pytest.fixture
def searxng() -> Iterator[FakeSearxng]:
    results = {
        "postgresql 17 release notes": [
            {"title": "Release 17", "url": PG_DOCS, "content": "Incremental backup, ..."},
            {"title": "PostgreSQL 17 Released!", "url": PG_NEWS, "content": "The PGDG ..."},
        ]
    }
    with FakeSearxng(results) as server:
        yield server


@pytest.mark.parametrize(
    ("base_url", "flavour"),
    [
        (None, "openai"),
        ("https://api.openai.com/v1", "openai"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("http://localhost:4000", "generic"),
        ("http://127.0.0.1:11434/v1", "generic"),
    ],
)
def test_flavour_follows_the_base_url(base_url, flavour):
    assert flavour_of(base_url) == flavour


@pytest.mark.parametrize("stream", [True, False])
def test_openai_uses_the_responses_api_hosted_search(fake_server, make_openai, stream):
    fake_server.push(
        success(
            "PostgreSQL 17 adds incremental backup.",
            prompt_tokens=120,
            completion_tokens=40,
            searches=(("postgresql 17 release notes", (PG_DOCS, PG_NEWS)),),
            annotations=(url_citation(PG_DOCS, "Release 17"),),
        )
    )
    # The first Responses call in a process builds the client's event types (~1 s idle,
    # several seconds on a loaded machine): keep that out of the 5 s attempt budget.
    provider = make_openai(flavour="openai", stream=stream, timeout_s=60.0)
    seen: list[str] = []

    result = provider.complete(
        MESSAGES,
        model="gpt-5.1",
        task="execute",
        web_search=True,
        reasoning_effort="low",
        on_delta=seen.append,
    )

    assert fake_server.chat_requests() == []
    assert result.retries == []
    [request] = fake_server.responses_requests()
    assert request.body["tools"] == [{"type": "web_search"}]
    assert request.body["input"] == MESSAGES
    assert request.body["reasoning"] == {"effort": "low"}
    assert bool(request.body.get("stream")) is stream
    assert result.text == "PostgreSQL 17 adds incremental backup."
    assert seen[-1] == result.text
    assert result.tools_used == [
        {
            "tool": "web_search",
            "query": "postgresql 17 release notes",
            "urls": [PG_DOCS, PG_NEWS],
            "via": "openai",
        }
    ]
    assert result.citations == [{"url": PG_DOCS, "title": "Release 17"}]
    assert (result.input_tokens, result.output_tokens) == (120, 40)


def test_openai_without_web_search_stays_on_chat_completions(fake_server, make_openai):
    fake_server.push(success("plain"))

    make_openai(flavour="openai").complete(MESSAGES, model="gpt-5.1", task="execute")

    assert len(fake_server.chat_requests()) == 1 and fake_server.responses_requests() == []


@pytest.mark.parametrize("stream", [True, False])
def test_openrouter_uses_its_web_plugin_and_reports_cost(fake_server, make_openai, stream):
    fake_server.push(
        success(
            "Answer with sources.",
            cost=0.0031,
            annotations=(url_citation(PG_DOCS, "Release 17"), url_citation(PG_NEWS, "News")),
        )
    )

    result = make_openai(flavour="openrouter", stream=stream).complete(
        MESSAGES, model="openai/gpt-4o", task="execute", web_search=True
    )

    body = fake_server.chat_requests()[0].body
    assert body["plugins"] == [{"id": "web"}]
    assert body["usage"] == {"include": True}  # asks OpenRouter for usage.cost
    assert "tools" not in body
    assert [c["url"] for c in result.citations] == [PG_DOCS, PG_NEWS]
    assert result.tools_used == [
        {"tool": "web_search", "query": None, "urls": [PG_DOCS, PG_NEWS], "via": "openrouter"}
    ]
    assert result.gateway_cost_usd == pytest.approx(0.0031)  # OpenRouter's usage.cost


@pytest.mark.parametrize("stream", [True, False])
def test_generic_endpoint_searches_through_tool_calling(fake_server, make_openai, searxng, stream):
    fake_server.push(
        tool_call("web_search", {"query": "postgresql 17 release notes"}),
        success("It adds incremental backup [1].", prompt_tokens=200, completion_tokens=30),
    )
    provider = make_openai(stream=stream, search=SearxngSearch(searxng.base_url))

    result = provider.complete(MESSAGES, model="llama3.2", task="execute", web_search=True)

    first, second = fake_server.chat_requests()
    assert first.body["tools"] == [WEB_SEARCH_TOOL]
    assert searxng.queries == ["postgresql 17 release notes"]
    assistant, tool = second.body["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "web_search"
    assert tool["role"] == "tool" and tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert PG_DOCS in tool["content"] and "Incremental backup" in tool["content"]
    assert result.text == "It adds incremental backup [1]."
    assert result.tools_used == [
        {
            "tool": "web_search",
            "query": "postgresql 17 release notes",
            "urls": [PG_DOCS, PG_NEWS],
            "via": "searxng",
        }
    ]
    assert [c["url"] for c in result.citations] == [PG_DOCS, PG_NEWS]
    # Both rounds are paid for: usage adds up.
    assert (result.input_tokens, result.output_tokens) == (11 + 200, 7 + 30)


def test_failed_search_is_told_to_the_model_and_recorded(fake_server, make_openai, searxng):
    searxng.fail = True
    fake_server.push(tool_call("web_search", {"query": "anything"}), success("From memory."))
    provider = make_openai(search=SearxngSearch(searxng.base_url))

    result = provider.complete(MESSAGES, model="llama3.2", task="execute", web_search=True)

    tool = fake_server.chat_requests()[1].body["messages"][-1]
    assert tool["content"].startswith("error: the search failed")
    assert result.text == "From memory."
    [used] = result.tools_used
    assert used["query"] == "anything" and used["urls"] == [] and "500" in used["error"]


def test_endless_tool_calls_end_with_a_forced_answer(fake_server, make_openai, searxng):
    fake_server.push(*[tool_call("web_search", {"query": "again"})] * 3, success("Enough."))
    provider = make_openai(search=SearxngSearch(searxng.base_url))

    result = provider.complete(MESSAGES, model="llama3.2", task="execute", web_search=True)

    requests = fake_server.chat_requests()
    assert len(requests) == 4
    assert "tools" not in requests[-1].body  # the last round must answer
    assert result.text == "Enough." and len(result.tools_used) == 3


def test_generic_endpoint_without_search_service_says_so(fake_server, make_openai):
    fake_server.push(success("no search"))
    provider = make_openai()

    result = provider.complete(MESSAGES, model="llama3.2", task="execute", web_search=True)

    assert "tools" not in fake_server.chat_requests()[0].body
    assert result.tools_used == []
    info = provider_info(provider).as_dict()
    assert info["web_search"] == {"available": False, "via": None}
    assert "SEARXNG_URL" in info["hint"]


def test_search_availability_per_flavour(make_openai, searxng):
    assert provider_info(make_openai(flavour="openai")).web_search == "openai"
    assert provider_info(make_openai(flavour="openrouter")).web_search == "openrouter"
    searching = make_openai(search=SearxngSearch(searxng.base_url))
    assert provider_info(searching).as_dict()["web_search"] == {
        "available": True,
        "via": "searxng",
    }


def test_searxng_client_reads_the_json_api(searxng):
    results = SearxngSearch(searxng.base_url).search("postgresql 17 release notes")

    assert [r.url for r in results] == [PG_DOCS, PG_NEWS]
    assert results[0].title == "Release 17"


def test_offline_stand_in_simulates_search_only_when_asked():
    offline = OfflineProvider()
    plain = offline.complete(MESSAGES, model="m", task="execute")
    searched = offline.complete(MESSAGES, model="m", task="execute", web_search=True)

    assert plain.tools_used == []
    [used] = searched.tools_used
    assert used["tool"] == "web_search" and used["simulated"] is True and used["urls"]
    info = provider_info(offline).as_dict()
    assert info["offline"] is True and "canned" in info["hint"]


def test_tavily_is_the_second_choice_through_its_client(fake_server, make_openai):
    hit = {"title": "Release 17", "url": PG_DOCS, "content": "Incremental backup"}
    with FakeTavily([hit]) as tavily:
        search = make_search(None, "tvly-test-key", tavily.base_url)
        assert isinstance(search, TavilySearch)
        fake_server.push(tool_call("web_search", {"query": "pg 17"}), success("Done."))

        result = make_openai(search=search).complete(
            MESSAGES, model="llama3.2", task="execute", web_search=True
        )

        [(auth, body)] = tavily.calls
        assert auth == "Bearer tvly-test-key"
        assert body["query"] == "pg 17" and body["max_results"] == 5
        assert result.tools_used[0]["urls"] == [PG_DOCS]
        assert result.tools_used[0]["via"] == "tavily"
        tavily.status = 432
        with pytest.raises(SearchError, match="Tavily"):
            search.search("again")


def test_searxng_comes_first_and_nothing_means_no_search():
    assert isinstance(make_search("http://127.0.0.1:1", "tvly-key"), SearxngSearch)
    assert make_search(None, None) is None


def test_provider_description_never_shows_credentials_in_the_base_url(make_openai):
    provider = make_openai(base_url="https://bob:s3cret@gateway.example:8443/v1?key=abc")

    assert provider_info(provider).base_url == "https://gateway.example:8443/v1/"
