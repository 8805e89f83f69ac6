"""The council steps: create, build, edit, execute, peer review, synthesize, delete.

Every step transition is a compare-and-set on the session's revision (``SessionStates.
update``), so two workers asked to start the same step start it once.  Every LLM step is
a leased run (``runs.py``, described as data in ``run_specs.py``); build and synthesize
answer synchronously by waiting for theirs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable
from typing import Any, BinaryIO, NoReturn

from council_app.domain import RUNNING, RunKind, SessionStatus
from council_app.providers import LLMProvider
from council_app.providers.pricing import PriceTable
from council_app.session_ids import new_session_id, session_dir
from council_app.settings import Settings
from council_app.state import SessionGone, SessionStates
from council_app.store.base import SessionRow
from council_app.store.schema import utcnow
from council_app.workflow.base import StepsBase, refuse_if_running
from council_app.workflow.costs import empty_tokens
from council_app.workflow.council_input import check_council
from council_app.workflow.errors import StepConflict, UpstreamFailed
from council_app.workflow.follow_ups import add_follow_up, carried_context
from council_app.workflow.llm_calls import LlmCalls
from council_app.workflow.runs import INTERNAL_ERROR, Runs
from council_app.workflow.session_log import SessionLog
from council_app.workflow.steps import clear_from
from council_app.workflow.uploads import UploadRejected, remove_session_files, save_upload

log = logging.getLogger(__name__)


class CouncilWorkflow(StepsBase):
    def __init__(
        self,
        settings: Settings,
        states: SessionStates,
        provider: LLMProvider,
        prices: PriceTable,
        on_run_change: Callable[[str, int], None] | None = None,
    ) -> None:
        llm = LlmCalls(provider, prices, settings.sessions_dir)
        super().__init__(settings, states, llm)
        self.runs = Runs(settings, states, llm, on_run_change)
        # model -> served? (None: the provider has no list); set by services.py
        self.known_model: Callable[[str], bool | None] | None = None

    # -- create -------------------------------------------------------------------------

    def create_session(
        self,
        user_id: str,
        question: str,
        files: list[tuple[str, BinaryIO]],
        follow_up_of: str | None = None,
    ) -> dict[str, Any]:
        """A new session; ``follow_up_of`` (a session the caller owns, checked by the API)
        carries that session's question, verdict and uploads as context (follow_ups.py)."""
        carried = (
            carried_context(self.sessions_root, follow_up_of, self._load(follow_up_of))
            if follow_up_of
            else []
        )
        sid = new_session_id()
        folder = session_dir(self.sessions_root, sid)
        stored = []
        try:
            for name, stream in files:
                stored.append(
                    save_upload(folder, name, stream, self.settings.max_upload_mb * 1024 * 1024)
                )
        except UploadRejected:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # The folder exists from the start: the LLM call log goes there, and a run never
        # creates it (so it cannot recreate one a hard delete removed).
        folder.mkdir(parents=True, exist_ok=True)
        now = utcnow()
        state: dict[str, Any] = {
            "session_id": sid,
            "user_id": user_id,
            "created_at": now.isoformat(),
            "updated_at": now.isoformat(),
            "current_step": "input",
            "status": "idle",
            "question": question,
            "context_files": [u.path for u in stored],
            "ingested_data": [*carried, *({"metadata": u.metadata()} for u in stored)],
            "tokens": empty_tokens(),
            "log_file": str(SessionLog(folder).path),
        }
        if follow_up_of:
            state["follow_up_of"] = follow_up_of
        self.states.create(
            SessionRow(sid, user_id, question, "idle", "input", 0.0, 0, now, now), state
        )
        if follow_up_of:
            self._update(follow_up_of, lambda parent: add_follow_up(parent, sid))
        return {
            "session_id": sid,
            "status": "idle",
            "question": question,
            "follow_up_of": follow_up_of,
            "context_files": [
                {"filename": u.filename, "extension": u.extension, "size_bytes": u.size_bytes}
                for u in stored
            ],
        }

    # -- build and edit -----------------------------------------------------------------

    def build_council(self, sid: str, force: bool) -> dict[str, Any]:
        """A leased run like every LLM step; the request waits for it (bounded) and answers
        with the council, as clients expect.  If this worker dies the run is taken over."""
        state = self._run_and_wait(sid, RunKind.BUILD, force)
        council = state.get("council_config")
        if state.get("status") == SessionStatus.BUILD_ERROR or not isinstance(council, dict):
            _raise_failure(state.get("build_error") or "Building the council failed")
        return council

    def set_council(self, sid: str, payload: Any) -> dict[str, Any]:
        council = check_council(payload, self.settings.council_max_agents, self.known_model)

        def apply(state: dict[str, Any]) -> dict[str, Any]:
            refuse_if_running(state)
            previous = state.get("council_config") or {}
            council.setdefault("council_name", previous.get("council_name", "Custom council"))
            council.setdefault("strategy_summary", previous.get("strategy_summary", ""))
            state["council_config"] = council
            clear_from(state, "execute")
            state.pop("build_error", None)  # a council exists now; the old failure is moot
            state["status"] = "ready_to_execute"
            state["current_step"] = "edit"
            return council

        applied: dict[str, Any] = self._update(sid, apply)
        return applied

    # -- runs (runs.py executes every LLM step as a leased run) ------------------------

    def start_execute(self, sid: str, force: bool, *, retry_failed: bool = False) -> str:
        outcome, value = self.runs.start(sid, RunKind.EXECUTE, force, retry_failed=retry_failed)
        return "accepted" if outcome == "accepted" else str(value)

    def start_review(self, sid: str, force: bool, *, retry_failed: bool = False) -> str:
        outcome, value = self.runs.start(sid, RunKind.REVIEW, force, retry_failed=retry_failed)
        return "accepted" if outcome == "accepted" else str(value)

    def synthesize(self, sid: str, force: bool) -> str:
        """Leased like the others; the request waits for the verdict (bounded)."""
        state = self._run_and_wait(sid, RunKind.SYNTHESIZE, force)
        verdict = state.get("chairman_verdict")
        if not isinstance(verdict, str) or state.get("status") != SessionStatus.VERDICT_COMPLETE:
            _raise_failure(state.get("synthesis_error") or "The chairman's verdict failed")
        return verdict

    def _run_and_wait(self, sid: str, kind: RunKind, force: bool) -> dict[str, Any]:
        outcome, value = self.runs.start(sid, kind, force)
        if outcome != "accepted":
            return self._load(sid)  # already done: the stored result
        state = self.runs.wait_settled(sid, value, self.settings.sync_step_wait_seconds)
        if state is None:
            raise UpstreamFailed(
                f"The {kind} step is still running after "
                f"{self.settings.sync_step_wait_seconds} s; poll /status"
            )
        return state

    def cancel(self, sid: str) -> str:
        return self.runs.cancel(sid)

    def sweep_expired(self) -> int:
        """Take over runs whose lease ran out (the sweeper does this periodically)."""
        return self.runs.sweep_expired()

    def start_background(self) -> None:
        """This process's lease sweeper: started with the worker, not on a first request."""
        self.runs.ensure_sweeper()

    @property
    def held(self) -> set[str]:
        return self.runs.held

    def join(self, sid: str, timeout: float | None = None) -> bool:
        return self.runs.join(sid, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.runs.stop(timeout)

    # -- delete -------------------------------------------------------------------------

    def delete_session(self, sid: str, hard: bool) -> None:
        """Soft: a tombstone.  Hard: rows, checkpoints and files, and never under a run.

        The running check and the claim are one compare-and-set (``deleted`` in the
        document), the same one a starting run makes: of a hard delete and a start racing,
        exactly one wins, and a run never recreates the folder removed here.
        """
        if hard:

            def claim(state: dict[str, Any]) -> None:
                status = state.get("status")
                if status in RUNNING:
                    raise StepConflict(
                        f"The session is busy ({status}); cancel it or wait for it to "
                        "finish, then delete it",
                        current_status=status,
                    )
                state["deleted"] = True

            with contextlib.suppress(SessionGone):  # no state: metadata and files remain
                self._update(sid, claim)
        self.states.mark_deleted(sid, hard=hard)
        if hard:
            remove_session_files(session_dir(self.sessions_root, sid))


class RunCrashed(RuntimeError):
    """The run failed on a bug, not on the provider: a 500 whose detail stays in the logs."""


def _raise_failure(message: Any) -> NoReturn:
    text = str(message)
    if text.startswith(INTERNAL_ERROR):
        raise RunCrashed(text)
    raise UpstreamFailed(text)
