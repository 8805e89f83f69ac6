"""Token prices, so every run can report what it cost.

Prices are USD per million tokens. The built-in table covers the usual OpenAI models; a
JSON file can override or extend it without a code change when prices move.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rate:
    """Price of one model in USD per million tokens."""

    input: float
    output: float


BUILTIN_PRICES: dict[str, Rate] = {
    "gpt-5.1": Rate(1.25, 10.0),
    "gpt-5": Rate(1.25, 10.0),
    "gpt-5-mini": Rate(0.25, 2.0),
    "gpt-5-nano": Rate(0.05, 0.40),
    "gpt-4.1": Rate(2.0, 8.0),
    "gpt-4.1-mini": Rate(0.40, 1.60),
    "gpt-4o": Rate(2.50, 10.0),
    "gpt-4o-mini": Rate(0.15, 0.60),
}

# Deliberately on the expensive side so an unknown model is never reported as cheap.
UNKNOWN_RATE = Rate(2.50, 10.0)

_PER_MILLION = 1_000_000


class PriceTable:
    """Looks up a model's rate: exact name, then vendor-less name, then longest known prefix."""

    def __init__(self, rates: Mapping[str, Rate] | None = None) -> None:
        merged = dict(BUILTIN_PRICES)
        merged.update(rates or {})
        self._rates = {name.strip().lower(): rate for name, rate in merged.items()}

    @classmethod
    def load(cls, path: str | None) -> PriceTable:
        """Built-in table, overridden/extended by the JSON file at ``path`` when given.

        Raises ``ValueError`` with a one-line message naming the file when it is unusable.
        """
        if not path:
            return cls()
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise ValueError(f"price file {path}: cannot read ({e.strerror or e})") from e
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            reason = " ".join(str(e).split())
            raise ValueError(f"price file {path}: not valid JSON ({reason})") from e
        return cls(_rates_from_json(raw, path))

    def rate(self, model: str) -> Rate:
        """The rate used for ``model`` (``UNKNOWN_RATE`` when nothing matches)."""
        name = (model or "").strip().lower()
        candidates = [name]
        if "/" in name:  # OpenRouter style "openai/gpt-4o"
            candidates.append(name.rsplit("/", 1)[1])
        for candidate in candidates:
            if candidate in self._rates:
                return self._rates[candidate]
        for candidate in candidates:
            best = _longest_prefix(candidate, self._rates)
            if best is not None:
                return self._rates[best]
        return UNKNOWN_RATE

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, provider: str = "openai"
    ) -> float:
        """USD cost of one call; always 0.0 for the offline provider."""
        if provider == "offline":
            return 0.0
        rate = self.rate(model)
        return (
            max(0, input_tokens) * rate.input + max(0, output_tokens) * rate.output
        ) / _PER_MILLION


def _longest_prefix(name: str, known: Mapping[str, Rate]) -> str | None:
    """Longest known model name that ``name`` extends at a word boundary (e.g. a date suffix)."""
    best: str | None = None
    for key in known:
        extends = name.startswith(key) and len(name) > len(key) and not name[len(key)].isalnum()
        if extends and (best is None or len(key) > len(best)):
            best = key
    return best


def _rates_from_json(raw: object, path: str) -> dict[str, Rate]:
    if not isinstance(raw, dict):
        raise ValueError(f"price file {path}: expected a JSON object of model -> prices")
    rates: dict[str, Rate] = {}
    for model, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError(f"price file {path}: {model!r} must be an object with input/output")
        values = []
        for field in ("input", "output"):
            value = entry.get(field)
            if not _is_price(value):
                raise ValueError(
                    f"price file {path}: {model!r}.{field} must be a non-negative number"
                )
            values.append(float(value))
        rates[model] = Rate(*values)
    return rates


def _is_price(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


_DEFAULT_TABLE = PriceTable()


def cost_usd(model: str, input_tokens: int, output_tokens: int, provider: str = "openai") -> float:
    """Cost using the built-in table only (convenience for callers without a price file)."""
    return _DEFAULT_TABLE.cost_usd(model, input_tokens, output_tokens, provider)
