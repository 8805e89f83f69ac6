"""The council steps: build, edit, execute, peer review, synthesize.

Every step transition is a compare-and-set on the session's revision (``SessionStates.
update``), so two workers asked to start the same step start it once.  Build and
synthesize run in the request; execute and review run in the background (``runs.py``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import Any, BinaryIO

from council_app.providers import LLMProvider, ProviderError
from council_app.providers.pricing import PriceTable
from council_app.session_ids import new_session_id, session_dir
from council_app.settings import Settings
from council_app.state import SessionStates
from council_app.store.base import SessionRow
from council_app.store.schema import utcnow
from council_app.workflow import prompts
from council_app.workflow.base import StepsBase, refuse_if_running, successful_results
from council_app.workflow.costs import CostMeter, empty_tokens
from council_app.workflow.errors import PrerequisiteMissing, UpstreamFailed
from council_app.workflow.follow_ups import add_follow_up, carried_context
from council_app.workflow.llm_calls import LlmCalls
from council_app.workflow.parsing import ParseError, parse_council
from council_app.workflow.runs import BackgroundRuns, mark_if_expired
from council_app.workflow.session_log import SessionLog
from council_app.workflow.steps import clear_from
from council_app.workflow.uploads import UploadRejected, save_upload
from council_app.workflow.validation import validate_council

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
        self.runs = BackgroundRuns(settings, states, llm, on_run_change)

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
        def begin(state: dict[str, Any]) -> dict[str, Any] | None:
            refuse_if_running(state)
            if state.get("council_config") and not force:
                return state["council_config"]
            state["status"] = "build_in_progress"
            state["current_step"] = "build"
            state.pop("build_error", None)
            return None

        existing = self._update(sid, begin)
        if existing is not None:
            return existing
        meter = CostMeter(None)
        try:
            state = self._load(sid)
            context = self._context(sid, state)
            meter = CostMeter(state.get("tokens"))
            completion = self.llm.call(
                sid,
                "build",
                "builder",
                prompts.build_council_messages(state.get("question") or "", context),
                self.settings.council_model,
                meter,
                json_mode=True,
            )
            council = parse_council(completion.text)
        except (ProviderError, ParseError) as e:
            message = f"Building the council failed: {e}"

            def failed(s: dict[str, Any]) -> None:
                s["status"] = "build_error"
                s["build_error"] = message
                s["tokens"] = meter.snapshot()

            self._update(sid, failed)
            raise UpstreamFailed(message) from e
        except Exception as e:
            # Anything else (a bug, an unreadable upload) must not leave the session
            # "build_in_progress" forever: every later step would be refused with 409.
            self._unstick(sid, "build_in_progress", "build_error", "build_error", e)
            raise
        council["provider"] = completion.provider

        def done(s: dict[str, Any]) -> dict[str, Any]:
            s["council_config"] = council
            s["status"] = "build_complete"
            s["current_step"] = "edit"
            s["tokens"] = meter.snapshot()
            clear_from(s, "execute")
            return council

        return self._update(sid, done)

    def set_council(self, sid: str, payload: Any) -> dict[str, Any]:
        council = validate_council(payload, self.settings.council_max_agents)

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

        return self._update(sid, apply)

    # -- background steps (runs.py) ---------------------------------------------------

    def start_execute(self, sid: str, force: bool) -> str:
        return self.runs.start(sid, "execute", force)

    def start_review(self, sid: str, force: bool) -> str:
        return self.runs.start(sid, "review", force)

    def cancel(self, sid: str) -> str:
        return self.runs.cancel(sid)

    def expire_if_stale(self, sid: str, hot: dict[str, Any]) -> dict[str, Any]:
        return self.runs.expire_if_stale(sid, hot)

    def ensure_sweeper(self) -> None:
        self.runs.ensure_sweeper()

    def sweep_expired(self) -> int:
        return self.runs.sweep_expired()

    @property
    def held(self) -> set[str]:
        return self.runs.held

    def join(self, sid: str, timeout: float | None = None) -> bool:
        return self.runs.join(sid, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.runs.stop(timeout)

    # -- synthesize ---------------------------------------------------------------------

    def synthesize(self, sid: str, force: bool) -> str:
        def begin(state: dict[str, Any]) -> str | None:
            mark_if_expired(state)
            refuse_if_running(state)
            if not state.get("peer_reviews"):
                raise PrerequisiteMissing(
                    "Run the peer review first: POST /api/sessions/<id>/peer_review"
                )
            if state.get("chairman_verdict") and not force:
                return state["chairman_verdict"]
            clear_from(state, "synthesize")
            state["status"] = "synthesizing"
            state["current_step"] = "synthesize"
            return None

        existing = self._update(sid, begin)
        if existing is not None:
            return existing
        meter = CostMeter(None)
        model = self.settings.chairman_model or self.settings.council_model
        try:
            state = self._load(sid)
            meter = CostMeter(state.get("tokens"))
            completion = self.llm.call(
                sid,
                "synthesize",
                "chairman",
                prompts.chairman_messages(
                    state.get("question") or "",
                    successful_results(state),
                    state.get("peer_reviews") or [],
                    state.get("aggregated_scores") or {},
                ),
                model,
                meter,
            )
        except ProviderError as e:
            message = f"The chairman's verdict failed: {e}"

            def failed(s: dict[str, Any]) -> None:
                s["status"] = "review_complete"
                s["current_step"] = "review"
                s["synthesis_error"] = message
                s["tokens"] = meter.snapshot()

            self._update(sid, failed)
            raise UpstreamFailed(message) from e
        except Exception as e:
            self._unstick(sid, "synthesizing", "review_complete", "synthesis_error", e, "review")
            raise

        def done(s: dict[str, Any]) -> str:
            s["chairman_verdict"] = completion.text
            s["chairman_model"] = completion.model
            s["chairman_provider"] = completion.provider
            s["status"] = "verdict_complete"
            s["current_step"] = "complete"
            s["tokens"] = meter.snapshot()
            return completion.text

        return self._update(sid, done)
