"""What every council step needs: compare-and-set updates, the document, the uploads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from council_app.session_ids import session_dir
from council_app.settings import Settings
from council_app.state import SessionStates
from council_app.workflow.errors import NotReady, StepConflict
from council_app.workflow.llm_calls import LlmCalls
from council_app.workflow.steps import RUNNING
from council_app.workflow.uploads import load_context_text

log = logging.getLogger(__name__)


class StepsBase:
    """Shared by the request-time steps (council.py) and the background runs (runs.py)."""

    def __init__(self, settings: Settings, states: SessionStates, llm: LlmCalls) -> None:
        self.settings = settings
        self.states = states
        self.llm = llm
        self.sessions_root = Path(settings.sessions_dir)

    def _update(self, sid: str, mutate: Callable[[dict[str, Any]], Any]) -> Any:
        def with_progress(state: dict[str, Any]) -> Any:
            if not isinstance(state.get("progress"), dict):
                state["progress"] = {}
            return mutate(state)

        return self.states.update(sid, with_progress)

    def _load(self, sid: str) -> dict[str, Any]:
        stored = self.states.load(sid)
        if stored is None:
            raise NotReady(f"Session {sid} has no state")
        return stored.state

    def _context(self, sid: str, state: dict[str, Any]) -> str:
        items = [
            {**(i.get("metadata") or {}), **({"content": i["content"]} if "content" in i else {})}
            for i in state.get("ingested_data") or []
            if isinstance(i, dict)
        ]
        return load_context_text(session_dir(self.sessions_root, sid), items)

    def _unstick(
        self,
        sid: str,
        running: str,
        status: str,
        error_key: str,
        error: Exception,
        step: str | None = None,
    ) -> None:
        """After an unexpected error in a synchronous step, leave ``running`` (best effort)."""
        message = f"internal error: {type(error).__name__}"

        def mark(s: dict[str, Any]) -> None:
            if s.get("status") == running:
                s["status"] = status
                s[error_key] = message
                if step:
                    s["current_step"] = step

        try:
            self._update(sid, mark)
        except Exception:
            log.exception("Could not record the failure of %s on %s", running, sid)


def refuse_if_running(state: dict[str, Any]) -> None:
    status = state.get("status")
    if status in RUNNING:
        raise StepConflict(
            f"The session is busy ({status}); wait for it to finish or cancel it",
            current_status=status,
        )


def successful_results(state: dict[str, Any]) -> list[dict[str, Any]]:
    results = state.get("execution_results")
    items = results.get("execution_results") if isinstance(results, dict) else results
    return [
        r for r in items or [] if isinstance(r, dict) and r.get("status", "success") == "success"
    ]
