"""LLM providers: the real OpenAI-compatible client, or an offline stand-in without a key."""

from __future__ import annotations

from .base import Completion, LLMProvider, ProviderError
from .offline import OfflineProvider
from .openai_chat import OpenAIChatProvider

__all__ = [
    "Completion",
    "LLMProvider",
    "OfflineProvider",
    "OpenAIChatProvider",
    "ProviderError",
    "make_provider",
]


def make_provider(
    *,
    api_key: str | None,
    base_url: str | None,
    timeout_s: float = 120.0,
    max_retries: int = 3,
    offline_latency_ms: int = 0,
) -> LLMProvider:
    """The offline provider when no API key is configured, so the app runs without one."""
    if not api_key:
        return OfflineProvider(latency_ms=offline_latency_ms)
    return OpenAIChatProvider(
        api_key=api_key, base_url=base_url, timeout_s=timeout_s, max_retries=max_retries
    )
