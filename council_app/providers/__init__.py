"""LLM providers: the real OpenAI-compatible client, or an offline stand-in."""

from __future__ import annotations

from .base import Completion, LLMProvider, ProviderCancelled, ProviderError, ProviderInfo
from .offline import OfflineProvider
from .openai_chat import OpenAIChatProvider
from .search import SearchService, make_search

__all__ = [
    "Completion",
    "LLMProvider",
    "OfflineProvider",
    "OpenAIChatProvider",
    "ProviderCancelled",
    "ProviderError",
    "ProviderInfo",
    "make_provider",
    "provider_info",
]

OFFLINE_HINT = (
    "No LLM is configured: answers are canned by the offline stand-in. Set OPENAI_API_KEY "
    "(OpenAI, OpenRouter) or OPENAI_BASE_URL (a local server such as Ollama, vLLM, LM Studio)."
)


def make_provider(
    *,
    api_key: str | None,
    base_url: str | None,
    timeout_s: float = 60.0,
    connect_timeout_s: float = 5.0,
    max_retries: int = 2,
    stream: bool = True,
    search: SearchService | None = None,
    offline_latency_ms: int = 0,
    offline_fail_members: frozenset[str] = frozenset(),
) -> LLMProvider:
    """The real client when a key or a base URL is configured (a local server needs no
    key); otherwise the offline stand-in, so the app runs without either."""
    if not api_key and not base_url:
        return OfflineProvider(latency_ms=offline_latency_ms, fail_members=offline_fail_members)
    return OpenAIChatProvider(
        api_key=api_key,
        base_url=base_url,
        timeout_s=timeout_s,
        connect_timeout_s=connect_timeout_s,
        max_retries=max_retries,
        stream=stream,
        search=search,
    )


def provider_info(provider: LLMProvider) -> ProviderInfo:
    """What /api/health and the UI show about ``provider``."""
    info = getattr(provider, "info", None)
    if callable(info):
        found = info()
        if isinstance(found, ProviderInfo):
            return found
    offline = provider.name == "offline"
    return ProviderInfo(
        name=provider.name,
        offline=offline,
        base_url=None,
        web_search="simulated" if offline else None,
        hint=OFFLINE_HINT if offline else None,
    )


def make_search_service(
    searxng_url: str | None, tavily_api_key: str | None, tavily_url: str | None = None
) -> SearchService | None:
    """Re-exported for services.py: the search backing the generic ``web_search`` tool."""
    return make_search(searxng_url, tavily_api_key, tavily_url)
