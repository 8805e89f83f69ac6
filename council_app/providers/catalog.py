"""What is known about a model: its price per token and whether it takes ``reasoning_effort``.

The source is the model list LiteLLM maintains (``model_prices_and_context_window``), which
its wheel ships as a JSON file.  The file is read as data, located through the installed
distribution's metadata: importing ``litellm`` itself would fetch a newer list from the
internet at import time, and nothing here may download at run time.  Without the package
every model is simply unknown (costs reported as unknown, parameters sent and retried).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_DATA_FILE = "litellm/model_prices_and_context_window_backup.json"
_PER_MILLION = 1_000_000


@dataclass(frozen=True)
class ModelFacts:
    """One catalogue entry; prices in USD per million tokens (None when not listed)."""

    key: str
    input_per_million: float | None
    output_per_million: float | None
    supports_reasoning: bool
    supports_web_search: bool
    mode: str | None  # "chat", "responses", "embedding", "audio_speech", ...


@functools.cache
def _raw_catalog() -> Mapping[str, Any]:
    try:
        path = importlib.metadata.distribution("litellm").locate_file(_DATA_FILE)
        with open(str(path), encoding="utf-8") as f:
            data = json.load(f)
    except (importlib.metadata.PackageNotFoundError, OSError, ValueError) as e:
        log.warning("No model catalogue (litellm's price list is not installed): %s", e)
        return {}
    if not isinstance(data, dict):
        return {}
    data.pop("sample_spec", None)
    return {str(k).lower(): v for k, v in data.items() if isinstance(v, dict)}


def catalog_size() -> int:
    """How many models the shipped catalogue knows (0 without it)."""
    return len(_raw_catalog())


def candidates(model: str) -> list[str]:
    """Names to look ``model`` up under: as given, without its vendor prefix, and the way
    LiteLLM spells OpenRouter models."""
    name = (model or "").strip().lower()
    out = [name]
    if "/" in name:
        out.append(name.split("/", 1)[1])
        out.append(name.rsplit("/", 1)[1])
    out.append(f"openrouter/{name}")
    return list(dict.fromkeys(c for c in out if c))


def _longest_prefix(name: str, known: Mapping[str, Any]) -> str | None:
    """Longest known name that ``name`` extends at a word boundary (e.g. a date suffix)."""
    best: str | None = None
    for key in known:
        extends = name.startswith(key) and len(name) > len(key) and not name[len(key)].isalnum()
        if extends and (best is None or len(key) > len(best)):
            best = key
    return best


@functools.lru_cache(maxsize=1024)
def lookup(model: str) -> ModelFacts | None:
    """Facts about ``model``: exact name first, then vendor-less, then a dated variant's base."""
    data = _raw_catalog()
    if not data:
        return None
    names = candidates(model)
    key = next((n for n in names if n in data), None)
    if key is None:
        key = next((k for n in names if (k := _longest_prefix(n, data)) is not None), None)
    if key is None:
        return None
    entry = data[key]
    return ModelFacts(
        key=key,
        input_per_million=_per_million(entry.get("input_cost_per_token")),
        output_per_million=_per_million(entry.get("output_cost_per_token")),
        supports_reasoning=bool(entry.get("supports_reasoning")),
        supports_web_search=bool(entry.get("supports_web_search")),
        mode=entry.get("mode") if isinstance(entry.get("mode"), str) else None,
    )


def _per_million(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value) * _PER_MILLION


CHAT_MODES = frozenset({"chat", "responses", "completion"})


def can_chat(model: str) -> bool:
    """False only for a model the catalogue lists as something else (embeddings, speech,
    moderation...): unknown models are given the benefit of the doubt."""
    facts = lookup(model)
    return facts is None or facts.mode is None or facts.mode in CHAT_MODES


def supports_reasoning(model: str) -> bool | None:
    """True/False when the catalogue lists the model; None when it does not know it."""
    facts = lookup(model)
    return None if facts is None else facts.supports_reasoning
