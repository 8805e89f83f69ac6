"""Which keys each step produces, and clearing them when a step runs again."""

from __future__ import annotations

from typing import Any

# The enums live in council_app/domain.py; these names stay for the modules importing them.
from council_app.domain import EFFORTS, RUNNING  # noqa: F401

# Keys each step produces; a forced re-run of a step clears its own and every later one's.
EXECUTE_KEYS = ("execution_results", "execution_status", "execution_error")
REVIEW_KEYS = ("peer_reviews", "review_status", "aggregated_scores", "review_error")
SYNTHESIZE_KEYS = ("chairman_verdict", "synthesis_error")


def clear_from(state: dict[str, Any], step: str) -> None:
    """Drop the results, progress and member states of ``step`` and every step after it."""
    groups = {"execute": 0, "review": 1, "synthesize": 2}
    order = (EXECUTE_KEYS, REVIEW_KEYS, SYNTHESIZE_KEYS)
    later = ("execute", "review", "synthesize")[groups[step] :]
    raw = state.get("progress")
    progress: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for keys in order[groups[step] :]:
        for key in keys:
            state.pop(key, None)
    if step == "execute":
        progress.pop("execution", None)
    if step in ("execute", "review"):
        progress.pop("review", None)
    state["progress"] = progress
    members = state.get("members")
    if isinstance(members, dict):
        for kind in later:
            members.pop(kind, None)
