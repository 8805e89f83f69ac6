"""The one runner: every LLM step (build, execute, review, synthesize) is a leased run.

Lifecycle (docs/OPERATIONS.md draws it):

* **start** — a compare-and-set puts the session in the step's running status and records
  the run in the hot keys: ``run = {root, id, kind, owner, lease_until, deadline, cancel,
  tokens_at_start}``.  ``root`` names the run for its whole life; ``id`` names the current
  holder's lease (a takeover gives it a new one, so the old holder's progress is refused).
* **members** — fanned out in parallel (bounded); each finished member is checkpointed at
  once in ``run_members`` (one small row: answer and cost), then reported as progress.
* **heartbeat** — one lease keeper per process renews the leases of every run it holds in
  one batched run-scoped write; a refused renewal means the run was taken over (or
  finished) elsewhere.  The same tick reads every held run's cancel request in one query.
* **threads** — a run has none of its own: its first act, its members and its finish run
  on the process's bounded pool (``llm_pool``), so threads stay flat however many runs.
* **takeover** — any worker's sweeper claims a run whose lease ran out (compare-and-set on
  the document's revision, so exactly one claims it) and resumes it: only members with no
  checkpoint are asked again, their cost is added once from the checkpoints.
* **hand-over** — on SIGTERM the lease is released at once (``lease_until`` 0) and the
  checkpoints stay; another worker resumes the run without waiting for the lease.
* **finish** — the assembled results reach the document in one compare-and-set that
  checks only the run's ``root``: results held through an outage win over a takeover.
  While the database is down they are held and retried, and at exit saved for recovery.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from council_app import recovery
from council_app.domain import (
    FINISHED_MEMBER_STATES,
    RUNNING,
    MemberState,
    RunKind,
    SessionStatus,
    Step,
)
from council_app.providers import Completion, ProviderError
from council_app.providers.base import ProviderCancelled
from council_app.session_ids import session_dir
from council_app.settings import Settings
from council_app.state import SessionGone, SessionStates
from council_app.store.base import MemberCheckpoint, StoreError, StoreUnavailable, deep_merge
from council_app.workflow import llm_pool
from council_app.workflow.base import StepsBase, refuse_if_running
from council_app.workflow.costs import CostMeter
from council_app.workflow.errors import PrerequisiteMissing, StepConflict
from council_app.workflow.llm_calls import LlmCalls
from council_app.workflow.run_specs import (
    BY_STATUS,
    CANCELLED,
    DEADLINE,
    SPECS,
    Ask,
    Member,
    Outcome,
    StepSpec,
)

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error"  # how a run that failed on a bug says so
PREVIEW_CHARS = 400  # streamed text kept in the hot keys per member
POLL_S = 0.5  # how often a run looks for a cancel request (cancel answers within 2 s)


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_expired(hot: dict[str, Any], now: float | None = None) -> bool:
    """A running session whose run has no live lease (worker gone, or lease released)."""
    if hot.get("status") not in RUNNING:
        return False
    run = hot.get("run")
    if not isinstance(run, dict):
        return True  # running with no lease at all: a crash before the lease existed
    until = run.get("lease_until")
    return not isinstance(until, int | float) or until < (now or time.time())


INTERRUPTED = "interrupted: the server running this step stopped before it finished; start it again"


def _interrupt(state: dict[str, Any], spec: StepSpec) -> None:
    """Leave a running status that no run owns: the step's failure status, saying why."""
    if spec.kind == RunKind.SYNTHESIZE:  # the reviews stay usable
        state["status"] = SessionStatus.REVIEW_COMPLETE
        state["current_step"] = Step.REVIEW
    else:
        state["status"] = _FAILED[spec.kind]
    state[spec.error_key] = INTERRUPTED
    state["run"] = None


_FAILED = {
    RunKind.BUILD: SessionStatus.BUILD_ERROR,
    RunKind.EXECUTE: SessionStatus.EXECUTION_ERROR,
    RunKind.REVIEW: SessionStatus.REVIEW_ERROR,
}


def _show_kept(state: dict[str, Any], spec: StepSpec, kept: dict[str, Outcome]) -> None:
    """A retry's kept members show their finished word from the start, not "Queued"."""
    for name, outcome in kept.items():
        state["members"][spec.key][name] = {"state": outcome.state, "text": outcome.word}
        status = state.get(spec.status_key) if spec.status_key else None
        if isinstance(status, dict):
            status[name] = outcome.word


class Stopped(Exception):
    """A member's call was abandoned: cancel, deadline, hand-over or takeover."""


@dataclass
class _Live:
    """This process's view of one run it holds."""

    sid: str
    spec: StepSpec
    run: dict[str, Any]  # the run record as this holder wrote it
    done: threading.Event = field(default_factory=threading.Event)  # no longer held here
    abort: threading.Event = field(default_factory=threading.Event)  # stop asking, now
    cancelled: threading.Event = field(default_factory=threading.Event)
    superseded: threading.Event = field(default_factory=threading.Event)
    handover: threading.Event = field(default_factory=threading.Event)
    finishing: threading.Event = field(default_factory=threading.Event)
    kept: dict[str, Outcome] = field(default_factory=dict)  # a retry's good answers
    next_renew: float = 0.0  # time.monotonic() when the lease keeper renews it next

    @property
    def lease_id(self) -> str:
        return str(self.run["id"])

    @property
    def root(self) -> str:
        return str(self.run["root"])

    def stop_reason(self) -> str | None:
        if self.cancelled.is_set():
            return CANCELLED
        deadline = self.run.get("deadline")
        if isinstance(deadline, int | float) and time.time() > deadline:
            return DEADLINE
        return None


@dataclass
class _Plan:
    """A run's members as its first act left them: who is still to be asked, and how."""

    members: list[Member]
    outcomes: list[Outcome | None]  # filled in as members answer
    meter: CostMeter
    todo: list[int]
    ask: Callable[[int], None]


class Runs(StepsBase):
    def __init__(
        self,
        settings: Settings,
        states: SessionStates,
        llm: LlmCalls,
        on_run_change: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__(settings, states, llm)
        self._on_run_change = on_run_change  # (kind, +1/-1) for the runs-in-progress gauge
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.held: set[str] = set()  # sessions whose results wait for the database
        self._sweeper_pid: int | None = None
        self._sweeper_lock = threading.Lock()
        self._keeper_pid: int | None = None

    # -- starting -------------------------------------------------------------------------

    def start(
        self, sid: str, kind: str, force: bool, *, retry_failed: bool = False
    ) -> tuple[str, Any]:
        """Start ``kind`` as a leased run: ``("accepted", root)`` or ``("existing", value)``.

        ``retry_failed`` keeps the members whose last answer succeeded (their result, words
        and cost stay as they are) and asks only the others: the UI's "retry the failed
        ones" must not pay twice for answers it already has (issue 15).
        """
        spec = SPECS[kind]
        lease = self.settings.run_lease_seconds
        started: dict[str, Any] = {}
        kept: dict[str, Outcome] = {}
        root = uuid.uuid4().hex  # the same through compare-and-set retries

        def begin(state: dict[str, Any]) -> tuple[str, Any]:
            if state.get("deleted"):
                raise SessionGone(sid)
            refuse_if_running(state)
            missing = spec.prerequisite(state)
            if missing:
                raise PrerequisiteMissing(missing)
            members = spec.members(state)
            kept.clear()
            if retry_failed:
                kept.update(spec.kept(state, members))
                if len(kept) == len(members):
                    return "existing", "nothing_to_retry"  # nobody failed: nothing to ask
            elif not force:
                existing = spec.existing(state)
                if existing is not None:
                    return "existing", existing
            if kept:
                # Checkpointed before the run exists, so a takeover keeps them even when
                # this process dies right after the compare-and-set below (stale rows of a
                # start that lost it are cleared when a run of the session finishes).
                self._keep(sid, spec, root, kept)
            spec.start(state, members)
            _show_kept(state, spec, kept)
            now = time.time()
            state["run"] = {
                "root": root,
                "id": uuid.uuid4().hex,
                "kind": spec.kind,
                "owner": owner_name(),
                "lease_until": now + lease,
                "started_at": now,
                "deadline": now + self.settings.run_deadline_seconds,
                "cancel": False,
                "takeovers": 0,
                "tokens_at_start": state.get("tokens"),
            }
            if kept:
                state["run"]["kept"] = sorted(kept)
            started.clear()
            started.update(copy.deepcopy(state))
            return "accepted", state["run"]["root"]

        outcome: tuple[str, Any] = self._update(sid, begin)
        if outcome[0] == "accepted":
            self._launch(sid, spec, started, kept)
        return outcome

    def _keep(self, sid: str, spec: StepSpec, root: str, kept: dict[str, Outcome]) -> None:
        """The kept members as checkpoints of the new run, so a takeover keeps them too.

        Their cost is already in the run's starting totals: ``usage`` says ``kept`` and the
        resume adds nothing.  A checkpoint not stored only costs a takeover a repeat call.
        """
        for name, outcome in kept.items():
            checkpoint = MemberCheckpoint(
                sid,
                spec.key,
                name,
                root,
                outcome.state,
                {"entry": outcome.entry, "word": outcome.word, "usage": {"kept": True}},
            )
            try:
                self.states.put_member(checkpoint)
            except StoreError as e:
                log.warning("Kept member %s/%s not checkpointed: %s", sid, name, e)

    def _launch(
        self,
        sid: str,
        spec: StepSpec,
        snapshot: dict[str, Any],
        kept: dict[str, Outcome] | None = None,
    ) -> None:
        """Hold the run here: its lease kept by the process's keeper, its work queued on the
        process's pool (no thread of its own)."""
        live = _Live(sid, spec, dict(snapshot["run"]), kept=dict(kept or {}))
        live.next_renew = time.monotonic() + self._renew_every
        with self._lock:
            self._live[sid] = live
            if self._keeper_pid != os.getpid():  # one per process, started with its first run
                self._keeper_pid = os.getpid()
                threading.Thread(target=self._keep_leases, name="lease-keeper", daemon=True).start()
        if self._on_run_change:
            self._on_run_change(spec.kind, 1)
        try:
            llm_pool.member_pool(self.settings.llm_max_concurrency).submit(
                self._begin, live, snapshot
            )
        except RuntimeError:  # the interpreter is exiting: the lease runs out, a takeover
            self._forget(live)  # elsewhere resumes the run

    # -- the runner -----------------------------------------------------------------------

    def _begin(self, live: _Live, snapshot: dict[str, Any]) -> None:
        """A run's first act, on the pool: resume what is checkpointed, then start the
        members; ``_end`` follows in the thread of the last of them."""
        try:
            plan = self._prepare(live, snapshot)
        except Exception as e:
            self._end(live, snapshot, None, e)
            return
        # The process's bounded pool (LLM_MAX_CONCURRENCY), not a pool per run.
        llm_pool.start_members(
            plan.todo,
            plan.ask,
            self.settings.council_max_parallel,
            self.settings.llm_max_concurrency,
            then=lambda error: self._end(live, snapshot, plan, error),
        )

    def _end(
        self, live: _Live, snapshot: dict[str, Any], plan: _Plan | None, error: BaseException | None
    ) -> None:
        """A run's last act, exactly once: its results written (or, after a bug, the
        session marked failed, never left running), then it is no longer held here."""
        try:
            if error is not None:
                raise error
            assert plan is not None
            self._finish(live, snapshot, plan)
        except Exception as e:  # a bug must not leave the session running
            log.exception("Run %s of %s failed", live.spec.kind, live.sid)
            reason = f"{INTERNAL_ERROR}: {type(e).__name__}"

            def failed(state: dict[str, Any]) -> None:
                if self._owns(state, live):
                    live.spec.finish(state, [], reason)
                    state["run"] = None

            live.finishing.set()
            self._write_until_stored(live.sid, failed, snapshot)
        finally:
            self._forget(live)

    def _forget(self, live: _Live) -> None:
        live.abort.set()
        with self._lock:
            if self._live.get(live.sid) is live:
                del self._live[live.sid]
        if self._on_run_change:
            self._on_run_change(live.spec.kind, -1)
        live.done.set()

    def _prepare(self, live: _Live, snapshot: dict[str, Any]) -> _Plan:
        spec, sid = live.spec, live.sid
        # The call log goes to the session's folder.  Sessions from before the folder was
        # made at creation (or migrated) may lack it: made here, right after the start's
        # compare-and-set proved the session live; a hard delete cannot happen while the
        # run holds it, and the log never creates the folder itself.
        with contextlib.suppress(OSError):
            session_dir(self.sessions_root, sid).mkdir(parents=True, exist_ok=True)
        members = spec.members(snapshot)
        meter = CostMeter(live.run.get("tokens_at_start"))
        outcomes: list[Outcome | None] = [None] * len(members)
        try:
            stored = {c.member: c for c in self.states.run_members(live.root)}
        except StoreError:
            stored = {}
        resumed: dict[str, Any] = {}
        for i, m in enumerate(members):
            if m.name in live.kept:  # a retry's good answer: already paid for and counted
                outcomes[i] = resumed[m.name] = live.kept[m.name]
                continue
            checkpoint = stored.get(m.name)
            if checkpoint is None or checkpoint.state not in FINISHED_MEMBER_STATES:
                continue
            outcome = Outcome(
                checkpoint.result["entry"],
                MemberState(checkpoint.state),
                checkpoint.result.get("word", ""),
            )
            outcomes[i] = outcome
            resumed[m.name] = outcome
            usage = checkpoint.result.get("usage") or {}
            if usage.get("kept"):
                continue  # kept by a retry: its cost is in the starting totals
            meter.add(
                spec.key,
                m.name,
                int(usage.get("input_tokens", 0)),
                int(usage.get("output_tokens", 0)),
                _cost(usage),
            )
        if resumed:
            log.info(
                "Run %s of %s resumes: %d member(s) already answered", spec.kind, sid, len(resumed)
            )
            self._report(live, members, outcomes, meter, list(resumed))
        todo = [i for i, o in enumerate(outcomes) if o is None]
        ask = Ask(
            snapshot,
            lambda: self._context(sid, snapshot),
            self.settings.council_model,
            self.settings.chairman_model,
        )
        lock = threading.Lock()

        def one(index: int) -> None:
            member = members[index]
            if live.abort.is_set() or live.stop_reason():
                live.abort.set()
                return
            self._member_word(live, member, MemberState.THINKING, spec.busy_word)
            member_meter = CostMeter(None)
            try:
                outcome = spec.ask(ask.with_call(self._caller(live, member, member_meter)), member)
            except Stopped:
                return  # left unanswered: the next holder asks it (or it shows cancelled)
            # A paid answer is kept even when the run is being handed over: checkpointed,
            # the next holder does not ask for it again.
            totals = member_meter.snapshot()
            usage = {
                "input_tokens": totals["input_tokens"],
                "output_tokens": totals["output_tokens"],
                # None when the provider's price or usage is unknown (costs.py)
                "cost_usd": totals["total_cost_usd"] if totals["cost_known"] else None,
            }
            meter.add(
                spec.key,
                member.name,
                usage["input_tokens"],
                usage["output_tokens"],
                usage["cost_usd"],
            )
            with lock:
                outcomes[index] = outcome
            self._checkpoint(live, member, outcome, usage)
            self._report(live, members, outcomes, meter, [member.name])

        return _Plan(members, outcomes, meter, todo, one)

    def _finish(self, live: _Live, snapshot: dict[str, Any], plan: _Plan) -> None:
        spec, sid, outcomes = live.spec, live.sid, plan.outcomes
        finished_all = all(o is not None for o in outcomes)
        stopped = live.stop_reason()
        if not finished_all and stopped is None:
            if live.handover.is_set():
                self._release(live)
            else:
                log.info("Run %s of %s was taken over elsewhere; leaving it", spec.kind, sid)
            return
        live.finishing.set()

        def finish(state: dict[str, Any]) -> None:
            if not self._owns(state, live):
                return  # finished by someone else meanwhile, or the session was replaced
            if not isinstance(state.get("progress"), dict):
                state["progress"] = {}
            spec.finish(state, outcomes, stopped)
            state["tokens"] = plan.meter.snapshot()
            self._settle_members(state, live, plan.members, outcomes)
            state["run"] = None

        self._write_until_stored(sid, finish, snapshot)
        with contextlib.suppress(StoreError):  # older runs' rows are only clutter
            self.states.drop_members(sid, keep_run_id=live.root)

    def _caller(
        self, live: _Live, member: Member, member_meter: CostMeter
    ) -> Callable[..., Completion]:
        """A priced, logged LLM call that stops waiting as soon as the run is stopped."""

        def call(messages: list[dict[str, str]], model: str, **kw: Any) -> Completion:
            deadline_epoch = live.run.get("deadline")
            deadline = None
            if isinstance(deadline_epoch, int | float):
                deadline = time.monotonic() + max(0.0, deadline_epoch - time.time())
            last = [0.0]

            def on_delta(text: str) -> None:
                now = time.monotonic()
                if now - last[0] >= POLL_S:
                    last[0] = now
                    self._preview(live, member, text)

            return _abortable(
                lambda: self.llm.call(
                    live.sid,
                    live.spec.key,
                    member.name,
                    messages,
                    model,
                    member_meter,
                    cancel=live.abort,
                    deadline=deadline,
                    on_delta=on_delta,
                    **kw,
                ),
                live,
            )

        return call

    # -- progress and checkpoints ---------------------------------------------------------

    def _member_word(self, live: _Live, member: Member, state: MemberState, word: str) -> None:
        typed = {"state": state, "text": word}
        patch: dict[str, Any] = {"members": {live.spec.key: {member.name: typed}}}
        if live.spec.status_key:
            patch[live.spec.status_key] = {member.name: word}
        self.states.progress(live.sid, patch, run_id=live.lease_id)

    def _preview(self, live: _Live, member: Member, text: str) -> None:
        patch = {"members": {live.spec.key: {member.name: {"preview": text[-PREVIEW_CHARS:]}}}}
        self.states.progress(live.sid, patch, run_id=live.lease_id)

    def _checkpoint(
        self, live: _Live, member: Member, outcome: Outcome, usage: dict[str, Any]
    ) -> None:
        checkpoint = MemberCheckpoint(
            live.sid,
            live.spec.key,
            member.name,
            live.root,
            outcome.state,
            {"entry": outcome.entry, "word": outcome.word, "usage": usage},
        )
        try:
            self.states.put_member(checkpoint)
        except StoreError as e:  # held in memory: the finish write carries it
            log.warning("Checkpoint of %s/%s not stored: %s", live.sid, member.name, e)

    def _report(
        self,
        live: _Live,
        members: list[Member],
        outcomes: list[Outcome | None],
        meter: CostMeter,
        names: list[str],
    ) -> None:
        spec = live.spec
        done = sum(1 for o in outcomes if o is not None)
        by_name = {m.name: o for m, o in zip(members, outcomes, strict=True)}
        patch: dict[str, Any] = {"members": {spec.key: {}}}
        words: dict[str, str] = {}
        for name in names:
            o = by_name.get(name)
            if o is None:
                continue
            patch["members"][spec.key][name] = {"state": o.state, "text": o.word, "preview": None}
            words[name] = o.word
        if spec.status_key:
            if spec.status_key == "execution_status":
                words["ALL"] = f"{done}/{len(members)} agents finished"
            patch[spec.status_key] = words
        if spec.progress_key:
            patch["progress"] = {spec.progress_key: round(100 * done / max(1, len(members)))}
        totals = meter.snapshot()
        patch["tokens"] = totals
        self.states.progress(
            live.sid,
            patch,
            {"cost_usd": totals["total_cost_usd"], "total_tokens": totals["total_tokens"]},
            run_id=live.lease_id,
        )

    def _settle_members(
        self,
        state: dict[str, Any],
        live: _Live,
        members: list[Member],
        outcomes: list[Outcome | None],
    ) -> None:
        """The typed member map as the run ends: unfinished members say cancelled."""
        settled = {}
        for m, o in zip(members, outcomes, strict=True):
            if o is None:
                settled[m.name] = {"state": MemberState.CANCELLED, "text": "Cancelled"}
            else:
                settled[m.name] = {"state": o.state, "text": o.word}
        if not isinstance(state.get("members"), dict):
            state["members"] = {}
        state["members"][live.spec.key] = settled

    # -- lease ------------------------------------------------------------------------------

    def _owns(self, state: dict[str, Any], live: _Live) -> bool:
        run = state.get("run")
        return isinstance(run, dict) and run.get("root") == live.root

    @property
    def _renew_every(self) -> float:
        return max(0.5, self.settings.run_lease_seconds / 4)

    def _keep_leases(self) -> None:
        """The process's one heartbeat for every run it holds, each ``POLL_S``.

        A thread per run polling its own session made hundreds of threads and a read per
        run per poll (500 a second for 250 councils), enough to drain the connection pool
        under load (issue 16).  One tick costs two statements, however many runs.
        """
        while True:
            with self._lock:
                if self._stopping.is_set() and not self._live:
                    self._keeper_pid = None
                    return
                lives = [live for live in self._live.values() if not live.abort.is_set()]
            if lives:
                try:
                    self._beat(lives)
                except Exception:  # the keeper must outlive any one bad tick
                    log.exception("Lease keeper tick failed")
            time.sleep(POLL_S)

    def _beat(self, lives: list[_Live]) -> None:
        """Renew the leases that are due, in one transaction, then look for cancel
        requests made elsewhere, in one read."""
        for live in lives:
            if live.stop_reason() == DEADLINE:
                live.abort.set()
        lives = [live for live in lives if not live.abort.is_set()]
        now = time.monotonic()
        due = [live for live in lives if now >= live.next_renew]
        if due:
            until = time.time() + self.settings.run_lease_seconds
            try:
                lost = self.states.renew_leases([(x.sid, x.lease_id, until) for x in due])
            except StoreUnavailable:
                for live in due:  # renew first thing when it is back
                    live.next_renew = time.monotonic() + 0.25
                return
            except StoreError:
                log.warning("Lease renewal failed", exc_info=True)
                return
            for live in due:
                if live.sid not in lost:
                    live.run["lease_until"] = until
                    live.next_renew = now + self._renew_every
                elif not live.finishing.is_set():
                    live.superseded.set()  # taken over elsewhere, or the session is gone
                    live.abort.set()
        try:
            hots = self.states.hot_many([x.sid for x in lives if not x.abort.is_set()])
        except StoreError as e:
            log.debug("Cancel look-up skipped: %s", e)
            return
        for live in lives:
            run = hots.get(live.sid, {}).get("run")
            if isinstance(run, dict) and run.get("cancel"):
                live.cancelled.set()
                live.abort.set()

    def _release(self, live: _Live) -> None:
        """Hand the run over now: the lease ends, the checkpoints stay."""
        try:
            self.states.renew_lease(live.sid, live.lease_id, 0.0, owner=None)
            log.info("Run %s of %s handed over (lease released)", live.spec.kind, live.sid)
        except StoreError as e:
            log.warning("Could not release the lease of %s (it expires by itself): %s", live.sid, e)

    # -- cancel -----------------------------------------------------------------------------

    def cancel(self, sid: str) -> str:
        def request(state: dict[str, Any]) -> str:
            run = state.get("run") or {}
            if state.get("status") not in RUNNING or not run:
                raise StepConflict(
                    f"Nothing to cancel: the session is '{state.get('status')}'",
                    current_status=state.get("status"),
                )
            run["cancel"] = True
            state["run"] = run
            return "cancelling"

        outcome: str = self._update(sid, request)
        with self._lock:
            live = self._live.get(sid)
        if live is not None:  # this process holds it: stop now, not at the next poll
            live.cancelled.set()
            live.abort.set()
        return outcome

    # -- takeover ---------------------------------------------------------------------------

    def ensure_sweeper(self) -> None:
        """Start (once per process) the thread that takes over runs whose worker died."""
        if self._sweeper_pid == os.getpid() or self._stopping.is_set():
            return
        with self._sweeper_lock:
            if self._sweeper_pid == os.getpid():
                return
            if self._sweeper_pid is not None:  # forked: the parent's runs are not ours
                self._live = {}
                self._lock = threading.Lock()
            self._sweeper_pid = os.getpid()
            threading.Thread(target=self._sweep_loop, name="lease-sweeper", daemon=True).start()

    def _sweep_loop(self) -> None:
        period = max(0.5, self.settings.run_lease_seconds / 4)
        while True:
            try:
                self.sweep_expired()
            except StoreError as e:  # the database may be down; try again next time
                log.debug("Lease sweep skipped: %s", e)
            except Exception:
                log.exception("Lease sweep failed")
            if self._stopping.wait(period):
                return

    def sweep_expired(self) -> int:
        """Take over every run whose lease ran out; returns how many this process took."""
        taken = 0
        with self._lock:
            ours = set(self._live)  # the lease keeper renews these
        others = [sid for sid in self.states.running_sessions() if sid not in ours]
        for sid, hot in self.states.hot_many(others).items():
            if self._stopping.is_set():
                break
            if lease_expired(hot) and self.take_over(sid):
                taken += 1
        return taken

    def take_over(self, sid: str) -> bool:
        """Claim an expired run (compare-and-set: one claimer wins) and resume it here."""
        lease = self.settings.run_lease_seconds
        claimed: dict[str, Any] = {}

        def claim(state: dict[str, Any]) -> bool:
            if not lease_expired(state):
                return False  # renewed or claimed meanwhile
            spec = BY_STATUS.get(str(state.get("status")))
            if spec is None:
                return False
            now = time.time()
            run = state.get("run") if isinstance(state.get("run"), dict) else None
            if run is None or run.get("kind") != spec.kind or not run.get("root"):
                # No run record this version wrote (an older server's crash, a migrated
                # document): nothing says it is recent, so no LLM call is made on its
                # behalf.  It is marked interrupted; the user starts the step again.
                _interrupt(state, spec)
                log.warning(
                    "Session %s was %s with no lease: marked interrupted", sid, spec.running
                )
                return False
            state["run"] = {
                **run,
                "id": uuid.uuid4().hex,
                "owner": owner_name(),
                "lease_until": now + lease,
                "takeovers": int(run.get("takeovers") or 0) + 1,
            }
            claimed.update(copy.deepcopy(state))
            return True

        try:
            if not self._update(sid, claim):
                return False
        except SessionGone:
            return False
        spec = BY_STATUS[str(claimed["status"])]
        log.warning(
            "Took over run %s of %s (lease expired; takeover %d)",
            spec.kind,
            sid,
            claimed["run"]["takeovers"],
        )
        self._launch(sid, spec, claimed)
        return True

    # -- results held through outages -------------------------------------------------------

    def _write_until_stored(
        self, sid: str, mutate: Callable[[dict[str, Any]], Any], base: dict[str, Any]
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
            except SessionGone:
                log.info("Results of %s dropped: the session was deleted", sid)
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
        self, sid: str, mutate: Callable[[dict[str, Any]], Any], base: dict[str, Any]
    ) -> None:
        doc = copy.deepcopy(base)
        pending = self.states.take_pending(sid)
        if pending is not None:
            deep_merge(doc, pending.patch)
        if not isinstance(doc.get("progress"), dict):
            doc["progress"] = {}
        mutate(doc)
        recovery.save(self.sessions_root, sid, state=(doc, self.states.next_revision()))

    # -- waiting and stopping ---------------------------------------------------------------

    def join(self, sid: str, timeout: float | None = None) -> bool:
        """Wait for this process's run of a session; True when none is left."""
        with self._lock:
            live = self._live.get(sid)
        return live is None or live.done.wait(timeout)

    def wait_settled(self, sid: str, root: str, timeout: float) -> dict[str, Any] | None:
        """Wait until the run ``root`` is over, wherever it runs; the document then, or None
        if it still runs at ``timeout`` (a takeover elsewhere may take longer)."""
        deadline = time.monotonic() + timeout
        self.join(sid, timeout)
        while True:
            found = self.states.hot(sid)  # small: the run record is a hot key
            if found is None:
                raise SessionGone(sid)
            run = found[1].get("run")
            if not (isinstance(run, dict) and run.get("root") == root):
                stored = self.states.load(sid)
                if stored is None:
                    raise SessionGone(sid)
                return stored.state
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    def running_here(self) -> list[str]:
        with self._lock:
            return list(self._live)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: hand every unfinished run over (lease released, checkpoints kept);
        runs that are finishing write their results, or save them for recovery."""
        self._stopping.set()
        with self._lock:
            lives = list(self._live.values())
        for live in lives:
            if not live.finishing.is_set():
                live.handover.set()
                live.abort.set()
        deadline = time.monotonic() + timeout
        for live in lives:
            live.done.wait(max(0.0, deadline - time.monotonic()))


def _cost(usage: dict[str, Any]) -> float | None:
    """A checkpoint's cost: None (unknown) stays unknown; checkpoints from before that
    distinction have a number."""
    value = usage.get("cost_usd", 0.0)
    return None if value is None else float(value)


def _abortable(fn: Callable[[], Completion], live: _Live) -> Completion:
    """Run one LLM call so that a stop is seen within ``POLL_S`` even when the provider is
    stuck (no chunk, no retry to notice its cancel event at): the call is left behind."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the waiting thread
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name="llm-call", daemon=True).start()
    while not done.wait(POLL_S / 2):
        if live.abort.is_set():
            raise Stopped()
    error = box.get("error")
    if error is not None:
        if isinstance(error, ProviderCancelled) and (
            live.abort.is_set() or live.stop_reason() is not None
        ):
            raise Stopped() from error
        raise error
    value = box.get("value")
    if isinstance(value, Completion):
        return value
    raise ProviderError("the provider returned nothing")
