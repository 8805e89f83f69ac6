"""Which keys each step produces, and clearing them when a step runs again."""

from __future__ import annotations

# The enums live in council_app/domain.py; these names stay for the modules importing them.
from council_app.domain import EFFORTS, RUNNING  # noqa: F401

# Keys each step produces; a forced re-run of a step clears its own and every later one's.
EXECUTE_KEYS = ("execution_results", "execution_status", "execution_error")
REVIEW_KEYS = ("peer_reviews", "review_status", "aggregated_scores", "review_error")
SYNTHESIZE_KEYS = ("chairman_verdict", "synthesis_error")


def clear_from(state: dict, step: str) -> None:
    """Drop the results and progress of ``step`` and of every step after it."""
    groups = {"execute": 0, "review": 1, "synthesize": 2}
    order = (EXECUTE_KEYS, REVIEW_KEYS, SYNTHESIZE_KEYS)
    progress = state.get("progress") if isinstance(state.get("progress"), dict) else {}
    for keys in order[groups[step] :]:
        for key in keys:
            state.pop(key, None)
    if step == "execute":
        progress.pop("execution", None)
    if step in ("execute", "review"):
        progress.pop("review", None)
    state["progress"] = progress
