"""Running token and cost totals of a session, per step and per agent.

A call whose cost is unknown (no usage from the server, or no price for the model) adds
its tokens but no dollars, counts in ``unpriced_calls`` and turns ``cost_known`` false in
every bucket it touches, so a total is never shown as exact when part of it is missing.
"""

from __future__ import annotations

import threading
from typing import Any


def empty_tokens() -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "total_cost_usd": 0.0,
        "cost_known": True,
        "unpriced_calls": 0,
        "by_step": {},
        "by_agent": {},
    }


class CostMeter:
    """Adds each LLM call to the session's totals; thread-safe for parallel agents."""

    def __init__(self, tokens: dict[str, Any] | None) -> None:
        base = empty_tokens()
        if isinstance(tokens, dict):
            base.update(_counts(tokens))
            for key in ("by_step", "by_agent"):
                if isinstance(tokens.get(key), dict):
                    # Every bucket gets all four counters: a partial one (older or
                    # hand-edited state) would otherwise fail the next add() with KeyError.
                    base[key] = {
                        k: {**v, **_counts(v)}
                        for k, v in tokens[key].items()
                        if isinstance(v, dict)
                    }
        self._tokens = base
        self._lock = threading.Lock()

    def add(
        self, step: str, agent: str, input_tokens: int, output_tokens: int, cost: float | None
    ) -> dict[str, Any]:
        """Record one call (``cost`` None: unknown); returns a copy of the new totals."""
        with self._lock:
            t = self._tokens
            for bucket in (t, _bucket(t["by_step"], step), _bucket(t["by_agent"], agent)):
                bucket["input_tokens"] += input_tokens
                bucket["output_tokens"] += output_tokens
                bucket["total_tokens"] += input_tokens + output_tokens
                if cost is None:
                    bucket["cost_known"] = False
                    bucket["unpriced_calls"] += 1
                else:
                    bucket["total_cost_usd"] = round(bucket["total_cost_usd"] + cost, 8)
            return self.snapshot_locked()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.snapshot_locked()

    def snapshot_locked(self) -> dict[str, Any]:
        t = self._tokens
        return {
            **{k: t[k] for k in ("input_tokens", "output_tokens", "total_tokens")},
            "total_cost_usd": t["total_cost_usd"],
            "cost_known": t["cost_known"],
            "unpriced_calls": t["unpriced_calls"],
            "by_step": {k: dict(v) for k, v in t["by_step"].items()},
            "by_agent": {k: dict(v) for k, v in t["by_agent"].items()},
        }


def _bucket(group: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in group:
        group[name] = {
            "input_tokens": 0,
            "output_tokens": 0,
            "total_tokens": 0,
            "total_cost_usd": 0.0,
            "cost_known": True,
            "unpriced_calls": 0,
        }
    bucket: dict[str, Any] = group[name]
    return bucket


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _counts(tokens: dict[str, Any]) -> dict[str, Any]:
    """The four counters of a stored totals dict, as numbers; missing or unusable ones are 0
    (the total from input + output), numbers stored as strings are read."""
    counts: dict[str, Any] = {}
    for key in ("input_tokens", "output_tokens"):
        value = _number(tokens.get(key))
        counts[key] = int(value) if value is not None else 0
    total = _number(tokens.get("total_tokens"))
    counts["total_tokens"] = (
        int(total) if total is not None else counts["input_tokens"] + counts["output_tokens"]
    )
    cost = _number(tokens.get("total_cost_usd"))
    counts["total_cost_usd"] = cost if cost is not None else 0.0
    unpriced = _number(tokens.get("unpriced_calls"))
    counts["unpriced_calls"] = int(unpriced) if unpriced is not None and unpriced > 0 else 0
    counts["cost_known"] = tokens.get("cost_known") is not False and not counts["unpriced_calls"]
    return counts
