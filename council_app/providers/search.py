"""Web search services behind the ``web_search`` tool offered to models on generic endpoints.

SearxNG (self-hosted, ``SEARXNG_URL``, its JSON API) comes first, one GET made with
``httpx2`` (the openai client's HTTP library); Tavily (``TAVILY_API_KEY``) second, through
its official client.  Both take a base URL, so tests point them at loopback servers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2 as httpx

log = logging.getLogger(__name__)

MAX_RESULTS = 5
_SNIPPET_CHARS = 500
TAVILY_URL = "https://api.tavily.com"


class SearchError(Exception):
    """The search service could not answer; the model is told so and carries on."""


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str


class SearchService(Protocol):
    name: str

    def search(self, query: str, max_results: int = MAX_RESULTS) -> list[SearchResult]: ...


class SearxngSearch:
    """A SearxNG instance's ``/search?format=json`` (JSON output must be enabled in its
    ``settings.yml``: ``search.formats: [html, json]``)."""

    name = "searxng"

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=3.0))

    def search(self, query: str, max_results: int = MAX_RESULTS) -> list[SearchResult]:
        try:
            response = self._client.get(
                f"{self.base_url}/search", params={"q": query, "format": "json"}
            )
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise SearchError(f"SearxNG at {self.base_url}: {type(e).__name__}: {e}") from e
        return _results(data.get("results") if isinstance(data, dict) else None, "content")[
            :max_results
        ]

    def close(self) -> None:
        self._client.close()


class TavilySearch:
    """Tavily's search API through its official client (``tavily-python``)."""

    name = "tavily"

    def __init__(self, api_key: str, base_url: str | None = None, timeout_s: float = 15.0) -> None:
        from tavily import TavilyClient

        self.timeout_s = timeout_s
        self._client = TavilyClient(api_key=api_key, api_base_url=base_url or TAVILY_URL)

    def search(self, query: str, max_results: int = MAX_RESULTS) -> list[SearchResult]:
        try:
            data = self._client.search(query, max_results=max_results, timeout=self.timeout_s)
        except Exception as e:  # the client raises its own errors, requests' and plain ones
            raise SearchError(f"Tavily: {type(e).__name__}: {e}") from e
        return _results(data.get("results") if isinstance(data, dict) else None, "content")[
            :max_results
        ]

    def close(self) -> None:
        self._client.close()


def _results(items: Any, snippet_key: str) -> list[SearchResult]:
    out: list[SearchResult] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        out.append(
            SearchResult(
                title=str(item.get("title") or ""),
                url=item["url"],
                snippet=str(item.get(snippet_key) or "")[:_SNIPPET_CHARS],
            )
        )
    return out


def make_search(
    searxng_url: str | None, tavily_api_key: str | None, tavily_url: str | None = None
) -> SearchService | None:
    """SearxNG when configured, else Tavily, else None (search unavailable)."""
    if searxng_url:
        return SearxngSearch(searxng_url)
    if tavily_api_key:
        return TavilySearch(tavily_api_key, tavily_url or TAVILY_URL)
    return None
