"""The four LLM steps described as data; ``runs.Runs`` executes any of them.

A spec says what a step needs before it starts, what it clears, who its members are (one
builder, one member per agent, one per reviewer, one chairman), how one member is asked
(prompt, call, parse) and how the finished members become the document's keys.  The
runner owns everything else: lease, heartbeat, checkpoints, takeover, cancel, deadline.
Keys and words are the ones LEGACY_STATE.md documents, so old clients read the same
document; ``members`` (typed ``{state, text}``) is added for the UI.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from council_app.domain import MemberState, RunKind, SessionStatus, Step
from council_app.providers import Completion, ProviderError
from council_app.workflow import prompts
from council_app.workflow.parsing import (
    ParseError,
    aggregate_scores,
    parse_council,
    parse_review,
    split_tldr,
)
from council_app.workflow.steps import clear_from

CANCELLED = "cancelled: stopped at the user's request"
DEADLINE = "stopped: the run went past its deadline (RUN_DEADLINE_SECONDS)"


@dataclass(frozen=True)
class Member:
    """One unit of fan-out: its name is its key in checkpoints and status maps."""

    name: str
    index: int
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What asking one member gave: the entry the document will hold, typed and legacy."""

    entry: dict[str, Any]
    state: MemberState
    word: str  # the legacy word in execution_status / review_status


class Ask:
    """What a spec's ``ask`` may use: the run's snapshot and a priced, abortable LLM call.

    ``call(messages, model, *, reasoning_effort=None, json_mode=False, web_search=False)``
    is bound to one member by the runner (``with_call``); the uploads' text is read once
    per run, lazily (review and synthesis need none), and shared by its members.
    """

    def __init__(
        self,
        state: dict[str, Any],
        context: Callable[[], str],
        council_model: str,
        chairman_model: str | None,
    ) -> None:
        self.state = state
        self._read_context = context
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()
        self.council_model = council_model
        self.chairman_model = chairman_model
        self.call: Callable[..., Completion] = _unbound

    def with_call(self, call: Callable[..., Completion]) -> Ask:
        bound = copy.copy(self)  # shares the snapshot, the context cache and its lock
        bound.call = call
        return bound

    @property
    def question(self) -> str:
        q = self.state.get("question")
        return q if isinstance(q, str) else ""

    def context(self) -> str:
        with self._lock:
            if "text" not in self._cache:
                self._cache["text"] = self._read_context()
            return self._cache["text"]


def _unbound(*_args: Any, **_kw: Any) -> Completion:
    raise RuntimeError("Ask.call used before the runner bound it to a member")


@dataclass(frozen=True)
class StepSpec:
    kind: RunKind
    running: SessionStatus
    step: Step  # current_step while the run goes on
    error_key: str  # where a failure's message goes
    status_key: str | None  # legacy per-member words (execution_status / review_status)
    progress_key: str | None  # progress.<key> in percent
    busy_word: str
    prerequisite: Callable[[dict[str, Any]], str | None]  # a message when missing
    existing: Callable[[dict[str, Any]], Any]  # not None: already done (without force)
    members: Callable[[dict[str, Any]], list[Member]]
    ask: Callable[[Ask, Member], Outcome]
    finish: Callable[[dict[str, Any], list[Outcome | None], str | None], None]
    prepare: Callable[[dict[str, Any], list[Member]], None] = lambda s, m: None
    # A retry of the failed members keeps these (issue 15): the last run's good answers.
    kept: Callable[[dict[str, Any], list[Member]], dict[str, Outcome]] = lambda s, m: {}

    @property
    def key(self) -> str:
        """The kind as a plain ``str``: JSON object keys must not be enum members."""
        return self.kind.value

    def start(self, state: dict[str, Any], members: Sequence[Member]) -> None:
        """Put the document in this step's running status, every member queued."""
        self.prepare(state, list(members))
        state["status"] = self.running
        state["current_step"] = self.step
        state.pop(self.error_key, None)
        state.setdefault("members", {})
        if not isinstance(state["members"], dict):
            state["members"] = {}
        state["members"][self.key] = {
            m.name: {"state": MemberState.QUEUED, "text": "Queued"} for m in members
        }
        if self.progress_key:
            state["progress"][self.progress_key] = 0


def successful_results(state: dict[str, Any]) -> list[dict[str, Any]]:
    results = state.get("execution_results")
    items = results.get("execution_results") if isinstance(results, dict) else results
    return [
        r for r in items or [] if isinstance(r, dict) and r.get("status", "success") == "success"
    ]


def _kept_proposals(state: dict[str, Any], members: list[Member]) -> dict[str, Outcome]:
    """The agents whose last answer succeeded (same name, same place in the council)."""
    by_name = {m.name: m for m in members}
    kept: dict[str, Outcome] = {}
    for entry in successful_results(state):
        m = by_name.get(str(entry.get("agent_name")))
        if m is not None and entry.get("proposal_id") == m.index + 1:
            kept[m.name] = Outcome(copy.deepcopy(entry), MemberState.DONE, "Done")
    return kept


def _kept_reviews(state: dict[str, Any], members: list[Member]) -> dict[str, Outcome]:
    """The reviewers whose last review parsed; a skipped one is decided again (no call)."""
    names = {m.name for m in members}
    reviews = state.get("peer_reviews")
    kept: dict[str, Outcome] = {}
    for entry in reviews if isinstance(reviews, list) else []:
        if isinstance(entry, dict) and entry.get("reviewer") in names and "parsed" in entry:
            kept[str(entry["reviewer"])] = Outcome(
                copy.deepcopy(entry), MemberState.DONE, "Critique Complete"
            )
    return kept


def _agents(state: dict[str, Any]) -> list[Member]:
    council = state.get("council_config") or {}
    agents = council.get("agents") if isinstance(council, dict) else None
    return [Member(a["name"], i, a) for i, a in enumerate(agents or []) if isinstance(a, dict)]


def _mark_unfinished(status: dict[str, Any], names: list[str], busy: str) -> None:
    for name in names:
        if status.get(name) in ("Queued", busy):
            status[name] = "Cancelled"


def _failure(outcomes: list[Outcome | None]) -> str:
    return "; ".join(
        f"{o.entry.get('agent_name') or o.entry.get('reviewer') or 'member'}: "
        f"{o.entry.get('error')}"
        for o in outcomes
        if o is not None
    )


# -- build ------------------------------------------------------------------------------


def _build_ask(ask: Ask, member: Member) -> Outcome:
    try:
        completion = ask.call(
            prompts.build_council_messages(ask.question, ask.context()),
            ask.council_model,
            json_mode=True,
        )
        council = parse_council(completion.text)
    except (ProviderError, ParseError) as e:
        return Outcome({"error": f"Building the council failed: {e}"}, MemberState.FAILED, "Failed")
    council["provider"] = completion.provider
    return Outcome({"council": council}, MemberState.DONE, "Done")


def _build_finish(s: dict[str, Any], outcomes: list[Outcome | None], stopped: str | None) -> None:
    outcome = outcomes[0] if outcomes else None
    if outcome is not None and outcome.state == MemberState.DONE:
        s["council_config"] = outcome.entry["council"]
        s["status"] = SessionStatus.BUILD_COMPLETE
        s["current_step"] = Step.EDIT
        s.pop("build_error", None)
        clear_from(s, "execute")
        return
    s["status"] = SessionStatus.BUILD_ERROR
    s["build_error"] = stopped or (outcome.entry["error"] if outcome else "no answer")


BUILD = StepSpec(
    kind=RunKind.BUILD,
    running=SessionStatus.BUILD_IN_PROGRESS,
    step=Step.BUILD,
    error_key="build_error",
    status_key=None,
    progress_key=None,
    busy_word="Thinking...",
    prerequisite=lambda s: None,
    existing=lambda s: s.get("council_config") or None,
    members=lambda s: [Member("builder", 0)],
    ask=_build_ask,
    finish=_build_finish,
)


# -- execute ----------------------------------------------------------------------------


def _execute_prepare(state: dict[str, Any], members: list[Member]) -> None:
    clear_from(state, "execute")
    state["execution_status"] = {
        "ALL": f"Starting execution for {len(members)} agents...",
        **dict.fromkeys((m.name for m in members), "Queued"),
    }


def _execute_ask(ask: Ask, member: Member) -> Outcome:
    agent = member.config
    entry: dict[str, Any] = {
        "agent_name": agent["name"],
        "agent_persona": agent.get("persona", ""),
        "proposal_id": member.index + 1,
        "tools_used": [],
    }
    try:
        completion = ask.call(
            prompts.agent_messages(agent, ask.question, ask.context()),
            agent.get("model") or ask.council_model,
            reasoning_effort=agent.get("reasoning_effort"),
            web_search=bool(agent.get("enable_web_search")),
        )
    except ProviderError as e:
        entry.update(response="", tldr="", status="error", error=str(e))
        return Outcome(entry, MemberState.FAILED, "Failed")
    response, tldr = split_tldr(completion.text)
    entry.update(
        response=response,
        tldr=tldr,
        status="success",
        model=completion.model,
        provider=completion.provider,
        tools_used=list(completion.tools_used),
    )
    if completion.citations:
        entry["citations"] = list(completion.citations)  # {url, title} the answer cites
    return Outcome(entry, MemberState.DONE, "Done")


def _execute_finish(s: dict[str, Any], outcomes: list[Outcome | None], stopped: str | None) -> None:
    council = s.get("council_config") or {}
    names = [m.name for m in _agents(s)]
    done = [o.entry for o in outcomes if o is not None]
    ok = [e for e in done if e.get("status") == "success"]
    s["execution_results"] = {
        "council_name": council.get("council_name", ""),
        "original_question": s.get("question") or "",
        "execution_results": done,
    }
    status = s.setdefault("execution_status", {})
    if stopped:
        s["status"] = SessionStatus.EXECUTION_ERROR
        s["execution_error"] = stopped
        status["ALL"] = "Cancelled"
        _mark_unfinished(status, names, "Thinking...")
    elif ok:
        s["status"] = SessionStatus.EXECUTION_COMPLETE
        s["progress"]["execution"] = 100
        status["ALL"] = f"Execution complete: {len(ok)}/{len(names)} agents succeeded"
    else:
        s["status"] = SessionStatus.EXECUTION_ERROR
        s["execution_error"] = "every agent failed: " + _failure(outcomes)
        status["ALL"] = "Execution failed"


EXECUTE = StepSpec(
    kind=RunKind.EXECUTE,
    running=SessionStatus.EXECUTING,
    step=Step.EXECUTE,
    error_key="execution_error",
    status_key="execution_status",
    progress_key="execution",
    busy_word="Thinking...",
    prerequisite=lambda s: (
        None if _agents(s) else "Build the council first: POST /api/sessions/<id>/build_council"
    ),
    # A failed, cancelled or interrupted run starts again without force.
    existing=lambda s: (
        "already_executed"
        if s.get("execution_results") and s.get("status") != SessionStatus.EXECUTION_ERROR
        else None
    ),
    members=_agents,
    ask=_execute_ask,
    finish=_execute_finish,
    prepare=_execute_prepare,
    kept=_kept_proposals,
)


# -- review -----------------------------------------------------------------------------


def _review_prepare(state: dict[str, Any], members: list[Member]) -> None:
    clear_from(state, "review")
    state["review_status"] = dict.fromkeys((m.name for m in members), "Queued")


def _review_ask(ask: Ask, member: Member) -> Outcome:
    name = member.name
    others = [p for p in successful_results(ask.state) if p.get("agent_name") != name]
    if not others:  # nobody else's proposal to review: never score your own
        skipped = {"reviewer": name, "error": "no proposal from another agent to review"}
        return Outcome({**skipped, "skipped": True}, MemberState.SKIPPED, "Skipped")
    shown = [(int(p["proposal_id"]), p.get("response", "")) for p in others]
    try:
        completion = ask.call(
            prompts.review_messages(member.config, ask.question, shown),
            member.config.get("model") or ask.council_model,
            reasoning_effort=member.config.get("reasoning_effort"),
            json_mode=True,
        )
    except ProviderError as e:
        return Outcome({"reviewer": name, "error": str(e)}, MemberState.FAILED, "Review Failed")
    entry: dict[str, Any] = {
        "reviewer": name,
        "critique": completion.text,
        "tools_used": list(completion.tools_used),
        "model": completion.model,
        "provider": completion.provider,
    }
    try:
        parsed = parse_review(completion.text, [pid for pid, _ in shown])
    except ParseError as e:
        entry.update(tldr="", error=f"could not parse the review: {e}", parse_error=str(e))
        return Outcome(entry, MemberState.FAILED, "Review Failed")
    entry.update(tldr=parsed.get("overall_tldr", ""), parsed=parsed)
    return Outcome(entry, MemberState.DONE, "Critique Complete")


def _review_finish(s: dict[str, Any], outcomes: list[Outcome | None], stopped: str | None) -> None:
    done = [o.entry for o in outcomes if o is not None]
    s["peer_reviews"] = done
    s["aggregated_scores"] = aggregate_scores(done)
    status = s.setdefault("review_status", {})
    if stopped:
        s["status"] = SessionStatus.REVIEW_ERROR
        s["review_error"] = stopped
        _mark_unfinished(status, [m.name for m in _agents(s)], "Reviewing...")
    elif any("parsed" in e for e in done):
        s["status"] = SessionStatus.REVIEW_COMPLETE
        s["progress"]["review"] = 100
    else:
        s["status"] = SessionStatus.REVIEW_ERROR
        s["review_error"] = "every review failed: " + _failure(outcomes)


REVIEW = StepSpec(
    kind=RunKind.REVIEW,
    running=SessionStatus.REVIEWING,
    step=Step.REVIEW,
    error_key="review_error",
    status_key="review_status",
    progress_key="review",
    busy_word="Reviewing...",
    prerequisite=lambda s: (
        None
        if successful_results(s)
        else "Execute the council first: POST /api/sessions/<id>/execute"
    ),
    existing=lambda s: (
        "already_reviewed"
        if s.get("peer_reviews") and s.get("status") != SessionStatus.REVIEW_ERROR
        else None
    ),
    members=_agents,
    ask=_review_ask,
    finish=_review_finish,
    prepare=_review_prepare,
    kept=_kept_reviews,
)


# -- synthesize -------------------------------------------------------------------------


def _synthesize_ask(ask: Ask, member: Member) -> Outcome:
    try:
        completion = ask.call(
            prompts.chairman_messages(
                ask.question,
                successful_results(ask.state),
                ask.state.get("peer_reviews") or [],
                ask.state.get("aggregated_scores") or {},
            ),
            # The session's own choice (PUT /council's chairman_model) before the default.
            (ask.state.get("council_config") or {}).get("chairman_model")
            or ask.chairman_model
            or ask.council_model,
        )
    except ProviderError as e:
        return Outcome(
            {"error": f"The chairman's verdict failed: {e}"}, MemberState.FAILED, "Failed"
        )
    entry = {"verdict": completion.text, "model": completion.model, "provider": completion.provider}
    return Outcome(entry, MemberState.DONE, "Done")


def _synthesize_finish(
    s: dict[str, Any], outcomes: list[Outcome | None], stopped: str | None
) -> None:
    outcome = outcomes[0] if outcomes else None
    if outcome is not None and outcome.state == MemberState.DONE:
        s["chairman_verdict"] = outcome.entry["verdict"]
        s["chairman_model"] = outcome.entry["model"]
        s["chairman_provider"] = outcome.entry["provider"]
        s["status"] = SessionStatus.VERDICT_COMPLETE
        s["current_step"] = Step.COMPLETE
        s.pop("synthesis_error", None)
        return
    # The verdict failing leaves the reviews usable: back to review_complete, say why.
    s["status"] = SessionStatus.REVIEW_COMPLETE
    s["current_step"] = Step.REVIEW
    s["synthesis_error"] = stopped or (outcome.entry["error"] if outcome else "no answer")


SYNTHESIZE = StepSpec(
    kind=RunKind.SYNTHESIZE,
    running=SessionStatus.SYNTHESIZING,
    step=Step.SYNTHESIZE,
    error_key="synthesis_error",
    status_key=None,
    progress_key=None,
    busy_word="Thinking...",
    prerequisite=lambda s: (
        None
        if s.get("peer_reviews")
        else "Run the peer review first: POST /api/sessions/<id>/peer_review"
    ),
    existing=lambda s: s.get("chairman_verdict") or None,
    members=lambda s: [Member("chairman", 0)],
    ask=_synthesize_ask,
    finish=_synthesize_finish,
    prepare=lambda s, m: clear_from(s, "synthesize"),
)

SPECS: dict[str, StepSpec] = {s.kind: s for s in (BUILD, EXECUTE, REVIEW, SYNTHESIZE)}
BY_STATUS: dict[str, StepSpec] = {s.running: s for s in SPECS.values()}
