"""What every council step needs: compare-and-set updates, the document, the uploads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from council_app.domain import RUNNING
from council_app.session_ids import session_dir
from council_app.settings import Settings
from council_app.state import SessionStates
from council_app.workflow.errors import NotReady, StepConflict
from council_app.workflow.llm_calls import LlmCalls
from council_app.workflow.uploads import load_context_text

log = logging.getLogger(__name__)


class StepsBase:
    """Shared by the steps (council.py) and the runner (runs.py)."""

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


def refuse_if_running(state: dict[str, Any]) -> None:
    status = state.get("status")
    if status in RUNNING:
        raise StepConflict(
            f"The session is busy ({status}); wait for it to finish or cancel it",
            current_status=status,
        )
