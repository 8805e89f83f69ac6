"""Provider contract shared by the real OpenAI-compatible client and the offline stand-in.

The workflow only ever talks to an ``LLMProvider``.  One call is::

    provider.complete(
        messages, model=..., task="execute",
        reasoning_effort="high",          # dropped for models that do not take it
        json_mode=False,
        web_search=agent["enable_web_search"],
        on_delta=lambda text_so_far: ...,  # streamed text, called from the calling thread
        cancel=threading.Event(),          # set -> ProviderCancelled at the next chunk/retry
        deadline=time.monotonic() + 90,    # absolute; bounds the call with its retries
    ) -> Completion

``Completion`` carries the text, the token usage (``usage_known`` false when the server
sent none), the cost the gateway itself reported (``gateway_cost_usd``, preferred over any
price list), the searches made (``tools_used``, legacy shape: ``{"tool": "web_search",
"query": str, "urls": [str]}``), the answer's ``citations`` (``{"url", "title"}``) and the
``retries`` made (each ``{"attempt", "reason", "wait_s"}``) so they can be logged.
Failures raise ``ProviderError`` (a message fit for a user), or ``ProviderCancelled``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

OnDelta = Callable[[str], None]


@dataclass(frozen=True)
class Completion:
    """One finished model call, with the numbers needed for cost and latency accounting."""

    text: str
    model: str
    provider: str  # "openai" or "offline"
    input_tokens: int
    output_tokens: int
    duration_ms: float
    usage_known: bool = True  # False: the server sent no usage; the tokens are 0, not a count
    gateway_cost_usd: float | None = None  # what the gateway says the call cost
    tools_used: list[dict[str, Any]] = field(default_factory=list)
    citations: list[dict[str, str]] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)
    dropped_params: tuple[str, ...] = ()  # optional parameters the model refused


class ProviderError(Exception):
    """The call failed for good (after retries); ``str()`` is a message fit for a user.

    ``retries`` lists the attempts that failed before giving up, for the session log.
    """

    def __init__(self, message: str, retries: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.retries = list(retries or [])


class ProviderCancelled(ProviderError):
    """The caller's cancel event was set (or its deadline passed) during the call."""


@runtime_checkable
class LLMProvider(Protocol):
    """Anything that can turn chat messages into a ``Completion``."""

    name: str  # "openai" | "offline"

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        task: str,
        reasoning_effort: str | None = None,
        json_mode: bool = False,
        web_search: bool = False,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Completion: ...


@dataclass(frozen=True)
class ProviderInfo:
    """What ``/api/health`` and the UI show about the configured provider."""

    name: str
    offline: bool
    base_url: str | None
    web_search: str | None  # "openai" | "openrouter" | "searxng" | "tavily" | None
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "offline": self.offline,
            "base_url": self.base_url,
            "web_search": {"available": self.web_search is not None, "via": self.web_search},
            "hint": self.hint,
        }


def estimate_tokens(text: str) -> int:
    """Rough token count (~4 characters per token) for when no tokenizer is available."""
    if not text:
        return 0
    return max(1, math.ceil(len(text) / 4))
