"""What a call cost, honestly: the gateway's own figure, else tokens x a listed price.

Prices (USD per million tokens) come from the maintained model catalogue (``catalog.py``);
a JSON file (``COUNCIL_PRICES_FILE``) can override or extend it without a code change.
A model with no known price, or a response without usage, costs ``None`` (unknown), never
0 or a guess; only the offline stand-in is free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import catalog
from .base import Completion

_PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Rate:
    """Price of one model in USD per million tokens."""

    input: float
    output: float


class PriceTable:
    """Looks up a model's rate: the override file first, then the catalogue."""

    def __init__(self, rates: Mapping[str, Rate] | None = None) -> None:
        self._rates = {name.strip().lower(): rate for name, rate in (rates or {}).items()}

    @classmethod
    def load(cls, path: str | None) -> PriceTable:
        """The catalogue, overridden/extended by the JSON file at ``path`` when given.

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

    def rate(self, model: str) -> Rate | None:
        """The rate used for ``model``, or None when no price is known."""
        for candidate in catalog.candidates(model):
            if candidate in self._rates:
                return self._rates[candidate]
        for candidate in catalog.candidates(model):
            best = _longest_prefix(candidate, self._rates)
            if best is not None:
                return self._rates[best]
        facts = catalog.lookup(model)
        if facts is None or facts.input_per_million is None or facts.output_per_million is None:
            return None
        return Rate(facts.input_per_million, facts.output_per_million)

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, provider: str = "openai"
    ) -> float | None:
        """USD cost of one call from its tokens; 0.0 offline, None when the price is unknown."""
        if provider == "offline":
            return 0.0
        rate = self.rate(model)
        if rate is None:
            return None
        return (
            max(0, input_tokens) * rate.input + max(0, output_tokens) * rate.output
        ) / _PER_MILLION

    def cost_of(self, completion: Completion) -> float | None:
        """What ``completion`` cost: the gateway's figure when it sent one, else its tokens
        priced; None when usage or price is missing."""
        if completion.gateway_cost_usd is not None:
            return completion.gateway_cost_usd
        if completion.provider == "offline":
            return 0.0
        if not completion.usage_known:
            return None
        return self.cost_usd(
            completion.model, completion.input_tokens, completion.output_tokens, completion.provider
        )


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
            values.append(float(value))  # type: ignore[arg-type]  # _is_price checked it
        rates[model] = Rate(*values)
    return rates


def _is_price(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


_DEFAULT_TABLE = PriceTable()


def cost_usd(
    model: str, input_tokens: int, output_tokens: int, provider: str = "openai"
) -> float | None:
    """Cost using the catalogue only (convenience for callers without a price file)."""
    return _DEFAULT_TABLE.cost_usd(model, input_tokens, output_tokens, provider)
