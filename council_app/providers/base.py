"""Provider contract shared by the real OpenAI-compatible client and the offline stand-in.

The workflow only ever talks to an ``LLMProvider``; keeping the contract tiny lets the
offline provider replace the network entirely in demos and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

TASKS = ("build", "execute", "review", "synthesize")


@dataclass(frozen=True)
class Completion:
    """One finished model call, with the numbers needed for cost and latency accounting."""

    text: str
    model: str
    provider: str  # "openai" or "offline"
    input_tokens: int
    output_tokens: int
    duration_ms: float


class ProviderError(Exception):
    """The call failed for good (after retries); ``str()`` is a message fit for a user."""


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
    ) -> Completion: ...


def estimate_tokens(text: str) -> int:
    """Rough token count (~4 characters per token) for when no tokenizer is available."""
    if not text:
        return 0
    return max(1, math.ceil(len(text) / 4))
