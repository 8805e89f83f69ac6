"""Execute and review: background runs holding a lease, reporting progress per member.

A run starts with a compare-and-set that records its lease (``run`` in the hot keys); a
heartbeat renews the lease through the flusher.  A run whose lease ran out (its worker was
killed, or the server restarted) is marked interrupted, on read and by a per-process
sweeper, and can be started again.  Results are written with one compare-and-set at the
end, held and retried while the database is down, and saved for recovery at exit.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from council_app import recovery
from council_app.providers import ProviderError
from council_app.settings import Settings
from council_app.state import SessionStates
from council_app.store.base import StoreError, StoreUnavailable, deep_merge
from council_app.workflow import prompts
from council_app.workflow.base import StepsBase, refuse_if_running, successful_results
from council_app.workflow.costs import CostMeter
from council_app.workflow.errors import PrerequisiteMissing, StepConflict
from council_app.workflow.llm_calls import LlmCalls
from council_app.workflow.parsing import ParseError, aggregate_scores, parse_review, split_tldr
from council_app.workflow.steps import clear_from

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the server running this step stopped before it finished; start it again"
CANCELLED = "cancelled: stopped at the user's request"


@dataclass(frozen=True)
class _Lane:
    """Where a background step reports each member's progress."""

    status_key: str  # execution_status / review_status
    progress_key: str  # progress.execution / progress.review
    busy: str  # the word while a member works


EXECUTE_LANE = _Lane("execution_status", "execution", "Thinking...")
REVIEW_LANE = _Lane("review_status", "review", "Reviewing...")


def _mark_cancelled(status: dict[str, Any], members: list[dict[str, Any]], lane: _Lane) -> None:
    """Members that never finished say so."""
    for member in members:
        if status.get(member["name"]) in ("Queued", lane.busy):
            status[member["name"]] = "Cancelled"


class BackgroundRuns(StepsBase):
    def __init__(
        self,
        settings: Settings,
        states: SessionStates,
        llm: LlmCalls,
        on_run_change: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__(settings, states, llm)
        self._on_run_change = on_run_change  # (kind, +1/-1) for the runs-in-progress gauge
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self.held: set[str] = set()  # sessions whose results wait for the database
        self._sweeper_pid: int | None = None
        self._sweeper_lock = threading.Lock()

    def start(self, sid: str, kind: str, force: bool) -> str:
        run_id = uuid.uuid4().hex
        lease = self.settings.run_lease_seconds
        started: dict[str, Any] = {}  # the document as the run starts: its working copy

        def begin(state: dict[str, Any]) -> str:
            mark_if_expired(state)
            refuse_if_running(state)
            council = state.get("council_config") or {}
            if kind == "execute":
                if not council.get("agents"):
                    raise PrerequisiteMissing(
                        "Build the council first: POST /api/sessions/<id>/build_council"
                    )
                # A failed, cancelled or interrupted run starts again without force.
                failed = state.get("status") == "execution_error"
                if state.get("execution_results") and not force and not failed:
                    return "already_executed"
                clear_from(state, "execute")
                agents = [a["name"] for a in council["agents"]]
                state["execution_status"] = {
                    "ALL": f"Starting execution for {len(agents)} agents...",
                    **dict.fromkeys(agents, "Queued"),
                }
                state["progress"]["execution"] = 0
                state["status"] = "executing"
                state["current_step"] = "execute"
            else:
                if not successful_results(state):
                    raise PrerequisiteMissing(
                        "Execute the council first: POST /api/sessions/<id>/execute"
                    )
                failed = state.get("status") == "review_error"
                if state.get("peer_reviews") and not force and not failed:
                    return "already_reviewed"
                clear_from(state, "review")
                state["review_status"] = dict.fromkeys(
                    (a["name"] for a in council.get("agents", [])), "Queued"
                )
                state["progress"]["review"] = 0
                state["status"] = "reviewing"
                state["current_step"] = "review"
            state["run"] = {
                "id": run_id,
                "kind": kind,
                "owner": f"{socket.gethostname()}:{os.getpid()}",
                "lease_until": time.time() + lease,
                "cancel": False,
            }
            started.clear()
            started.update(copy.deepcopy(state))
            return "accepted"

        outcome = self._update(sid, begin)
        if outcome == "accepted":
            target = self._execute_run if kind == "execute" else self._review_run
            thread = threading.Thread(
                target=self._run_guarded,
                args=(sid, run_id, kind, target, started),
                name=f"council-{kind}-{sid}",
                daemon=True,
            )
            self._threads[sid] = thread
            thread.start()
        return outcome

    def _run_guarded(
        self,
        sid: str,
        run_id: str,
        kind: str,
        target: Callable[[str, str, dict[str, Any]], None],
        state: dict[str, Any],
    ) -> None:
        stop_heartbeat = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(sid, run_id, stop_heartbeat), daemon=True, name="lease"
        )
        beat.start()
        if self._on_run_change:
            self._on_run_change(kind, 1)
        try:
            target(sid, run_id, state)
        except Exception as e:  # a bug must not leave the session "executing"
            log.exception("Run %s of %s failed", kind, sid)
            reason = f"internal error: {type(e).__name__}"
            error_key = "execution_error" if kind == "execute" else "review_error"
            status = "execution_error" if kind == "execute" else "review_error"

            def failed(state: dict[str, Any]) -> None:
                if (state.get("run") or {}).get("id") == run_id:
                    state["status"] = status
                    state[error_key] = reason
                    state["run"] = None

            self._write_until_stored(sid, failed, state)
        finally:
            stop_heartbeat.set()
            self._threads.pop(sid, None)
            if self._on_run_change:
                self._on_run_change(kind, -1)

    def _heartbeat(self, sid: str, run_id: str, stop: threading.Event) -> None:
        lease = self.settings.run_lease_seconds
        while not stop.wait(max(0.5, lease / 4)):
            self.states.progress(sid, {"run": {"lease_until": time.time() + lease}}, run_id=run_id)

    def _fan_out(
        self,
        sid: str,
        run_id: str,
        members: list[dict[str, Any]],
        lane: _Lane,
        meter: CostMeter,
        work: Callable[[int, dict[str, Any]], tuple[dict[str, Any], str]],
    ) -> tuple[list[dict[str, Any]], bool]:
        """Run ``work`` for every council member in parallel (bounded), reporting progress.

        Stops starting members once a cancel request is seen.  Returns the entries of the
        members that ran, in council order, and whether the run was cancelled.
        """
        entries: list[dict[str, Any] | None] = [None] * len(members)
        finished = 0
        lock = threading.Lock()
        cancelled = threading.Event()

        def one(index: int) -> None:
            nonlocal finished
            name = members[index]["name"]
            if cancelled.is_set() or self._cancel_requested(sid):
                cancelled.set()
                return
            self.states.progress(sid, {lane.status_key: {name: lane.busy}}, run_id=run_id)
            entry, word = work(index, members[index])
            with lock:
                entries[index] = entry
                finished += 1
                pct = round(100 * finished / len(members))
                totals = meter.snapshot()
                words = {name: word}
                if lane.status_key == "execution_status":
                    words["ALL"] = f"{finished}/{len(members)} agents finished"
            self.states.progress(
                sid,
                {lane.status_key: words, "progress": {lane.progress_key: pct}, "tokens": totals},
                {"cost_usd": totals["total_cost_usd"], "total_tokens": totals["total_tokens"]},
                run_id=run_id,
            )

        with ThreadPoolExecutor(
            max_workers=min(self.settings.council_max_parallel, len(members))
        ) as pool:
            list(pool.map(one, range(len(members))))
        return [e for e in entries if e is not None], cancelled.is_set()

    def _execute_run(self, sid: str, run_id: str, state: dict[str, Any]) -> None:
        council = state["council_config"]
        agents: list[dict[str, Any]] = council["agents"]
        question = state.get("question") or ""
        context = self._context(sid, state)
        meter = CostMeter(state.get("tokens"))

        def answer(index: int, agent: dict[str, Any]) -> tuple[dict[str, Any], str]:
            entry: dict[str, Any] = {
                "agent_name": agent["name"],
                "agent_persona": agent.get("persona", ""),
                "proposal_id": index + 1,
                "tools_used": [],
            }
            try:
                completion = self.llm.call(
                    sid,
                    "execute",
                    agent["name"],
                    prompts.agent_messages(agent, question, context),
                    agent.get("model") or self.settings.council_model,
                    meter,
                    reasoning_effort=agent.get("reasoning_effort"),
                )
            except ProviderError as e:
                entry.update(response="", tldr="", status="error", error=str(e))
                return entry, "Failed"
            response, tldr = split_tldr(completion.text)
            entry.update(
                response=response,
                tldr=tldr,
                status="success",
                model=completion.model,
                provider=completion.provider,
            )
            return entry, "Done"

        done, cancelled = self._fan_out(sid, run_id, agents, EXECUTE_LANE, meter, answer)
        ok = [r for r in done if r["status"] == "success"]

        def finish(s: dict[str, Any]) -> None:
            if (s.get("run") or {}).get("id") != run_id:
                return  # this run was declared interrupted and superseded meanwhile
            s["execution_results"] = {
                "council_name": council.get("council_name", ""),
                "original_question": question,
                "execution_results": done,
            }
            s["tokens"] = meter.snapshot()
            s["run"] = None
            status = s.setdefault("execution_status", {})
            if cancelled:
                s["status"] = "execution_error"
                s["execution_error"] = CANCELLED
                status["ALL"] = "Cancelled"
                _mark_cancelled(status, agents, EXECUTE_LANE)
            elif ok:
                s["status"] = "execution_complete"
                s["progress"]["execution"] = 100
                status["ALL"] = f"Execution complete: {len(ok)}/{len(agents)} agents succeeded"
            else:
                s["status"] = "execution_error"
                s["execution_error"] = "every agent failed: " + "; ".join(
                    f"{r['agent_name']}: {r.get('error')}" for r in done
                )
                status["ALL"] = "Execution failed"

        self._write_until_stored(sid, finish, state)

    def _review_run(self, sid: str, run_id: str, state: dict[str, Any]) -> None:
        council = state.get("council_config") or {}
        reviewers: list[dict[str, Any]] = council.get("agents", [])
        question = state.get("question") or ""
        proposals = successful_results(state)
        meter = CostMeter(state.get("tokens"))

        def review(_index: int, reviewer: dict[str, Any]) -> tuple[dict[str, Any], str]:
            name = reviewer["name"]
            others = [p for p in proposals if p.get("agent_name") != name]
            if not others:  # nobody else's proposal to review: never score your own
                entry = {"reviewer": name, "error": "no proposal from another agent to review"}
                return {**entry, "skipped": True}, "Skipped"
            shown = [(int(p["proposal_id"]), p.get("response", "")) for p in others]
            try:
                completion = self.llm.call(
                    sid,
                    "review",
                    name,
                    prompts.review_messages(reviewer, question, shown),
                    reviewer.get("model") or self.settings.council_model,
                    meter,
                    reasoning_effort=reviewer.get("reasoning_effort"),
                    json_mode=True,
                )
            except ProviderError as e:
                return {"reviewer": name, "error": str(e)}, "Review Failed"
            entry: dict[str, Any] = {
                "reviewer": name,
                "critique": completion.text,
                "tools_used": [],
                "model": completion.model,
                "provider": completion.provider,
            }
            try:
                parsed = parse_review(completion.text, [pid for pid, _ in shown])
            except ParseError as e:
                entry.update(tldr="", error=f"could not parse the review: {e}", parse_error=str(e))
                return entry, "Review Failed"
            entry.update(tldr=parsed.get("overall_tldr", ""), parsed=parsed)
            return entry, "Critique Complete"

        done, cancelled = self._fan_out(sid, run_id, reviewers, REVIEW_LANE, meter, review)
        good = [r for r in done if "parsed" in r]

        def finish(s: dict[str, Any]) -> None:
            if (s.get("run") or {}).get("id") != run_id:
                return
            s["peer_reviews"] = done
            s["aggregated_scores"] = aggregate_scores(done)
            s["tokens"] = meter.snapshot()
            s["run"] = None
            status = s.setdefault("review_status", {})
            if cancelled:
                s["status"] = "review_error"
                s["review_error"] = CANCELLED
                _mark_cancelled(status, reviewers, REVIEW_LANE)
            elif good:
                s["status"] = "review_complete"
                s["progress"]["review"] = 100
            else:
                s["status"] = "review_error"
                s["review_error"] = "every review failed: " + "; ".join(
                    f"{r['reviewer']}: {r.get('error')}" for r in done
                )

        self._write_until_stored(sid, finish, state)

    def cancel(self, sid: str) -> str:
        def request(state: dict[str, Any]) -> str:
            run = state.get("run") or {}
            if state.get("status") not in ("executing", "reviewing") or not run:
                raise StepConflict(
                    f"Nothing to cancel: the session is '{state.get('status')}'",
                    current_status=state.get("status"),
                )
            run["cancel"] = True
            state["run"] = run
            return "cancelling"

        return self._update(sid, request)

    def expire_if_stale(self, sid: str, hot: dict[str, Any]) -> dict[str, Any]:
        """Called on reads: a run whose lease ran out is marked interrupted (and can restart)."""
        if not _lease_expired(hot):
            return hot

        def mark(state: dict[str, Any]) -> None:
            mark_if_expired(state)

        self._update(sid, mark)
        found = self.states.hot(sid)
        return found[1] if found else hot

    def ensure_sweeper(self) -> None:
        """Start (once per process) the thread that marks runs whose worker died, so no
        session stays "executing" even when nobody polls it."""
        if self._sweeper_pid == os.getpid() or self._stopping.is_set():
            return
        with self._sweeper_lock:
            if self._sweeper_pid == os.getpid():
                return
            self._sweeper_pid = os.getpid()
            threading.Thread(target=self._sweep_loop, name="lease-sweeper", daemon=True).start()

    def _sweep_loop(self) -> None:
        while not self._stopping.wait(max(1.0, self.settings.run_lease_seconds / 2)):
            try:
                self.sweep_expired()
            except Exception:  # the database may be down; try again next time
                log.warning("Lease sweep failed", exc_info=True)

    def sweep_expired(self) -> int:
        """Mark every run whose lease ran out as interrupted; returns how many."""
        marked = 0
        for sid in self.states.store.running_sessions():
            found = self.states.hot(sid)
            if found and _lease_expired(found[1]):
                self.expire_if_stale(sid, found[1])
                marked += 1
        return marked

    def _cancel_requested(self, sid: str) -> bool:
        """Seen through the database, so any worker can receive the cancel request."""
        try:
            found = self.states.hot(sid)
        except StoreError:
            return False  # the database is down: keep going, results are held
        return bool(found and (found[1].get("run") or {}).get("cancel"))

    def _write_until_stored(
        self,
        sid: str,
        mutate: Callable[[dict[str, Any]], Any],
        base: dict[str, Any] | None = None,
    ) -> None:
        """A run's results are held and retried while the database is down.

        If the process stops first, the finished document (``base`` with this process's
        progress and ``mutate`` applied) goes to the recovery file instead.
        """
        delay = 0.25
        while True:
            try:
                self._update(sid, mutate)
                self.held.discard(sid)
                return
            except StoreUnavailable as e:
                if sid not in self.held:
                    log.warning("Holding results of %s until the database is back: %s", sid, e)
                self.held.add(sid)
                if self._stopping.wait(delay):
                    self._save_for_recovery(sid, mutate, base)
                    self.held.discard(sid)
                    return
                delay = min(delay * 2, 4.0)

    def _save_for_recovery(
        self, sid: str, mutate: Callable[[dict[str, Any]], Any], base: dict[str, Any] | None
    ) -> None:
        if base is None:
            log.error("Results of %s lost: the database is down and no base state is known", sid)
            return
        doc = copy.deepcopy(base)
        pending = self.states.flusher.take(sid)
        if pending is not None:
            deep_merge(doc, pending.patch)
        if not isinstance(doc.get("progress"), dict):
            doc["progress"] = {}
        mutate(doc)
        recovery.save(self.sessions_root, sid, state=(doc, self.states.clock.next()))

    def join(self, sid: str, timeout: float | None = None) -> bool:
        """Wait for this process's background run of a session; True when none is left."""
        thread = self._threads.get(sid)
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop waiting on the database; runs holding results save them for recovery."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))


def _lease_expired(doc: dict[str, Any]) -> bool:
    run = doc.get("run")
    if doc.get("status") not in ("executing", "reviewing"):
        return False
    if not isinstance(run, dict):
        return True  # running with no lease at all: a crash before the lease existed
    until = run.get("lease_until")
    return not isinstance(until, int | float) or until < time.time()


def mark_if_expired(state: dict[str, Any]) -> None:
    """A run whose lease ran out is over: record it as interrupted (it can start again)."""
    if not _lease_expired(state):
        return
    kind = (state.get("run") or {}).get("kind")
    if state.get("status") == "executing" or kind == "execute":
        state["status"] = "execution_error"
        state["execution_error"] = INTERRUPTED
    else:
        state["status"] = "review_error"
        state["review_error"] = INTERRUPTED
    state["run"] = None
    log.warning("Run of %s lost its lease; marked interrupted", state.get("session_id"))
