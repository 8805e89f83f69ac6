"""The words a session's state is made of, typed: statuses, steps, runs, member states, efforts.

Every module (workflow, API, store, UI schema) takes them from here, so a status is never
a string literal spelled differently in two places.  They are ``StrEnum``s: they compare
equal to, and serialise as, the plain strings the state document has always held
(LEGACY_STATE.md), so old documents and old clients read the same values.
"""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    IDLE = "idle"
    BUILD_IN_PROGRESS = "build_in_progress"
    BUILD_COMPLETE = "build_complete"
    BUILD_ERROR = "build_error"
    READY_TO_EXECUTE = "ready_to_execute"
    EXECUTING = "executing"
    EXECUTION_COMPLETE = "execution_complete"
    EXECUTION_ERROR = "execution_error"
    REVIEWING = "reviewing"
    REVIEW_COMPLETE = "review_complete"
    REVIEW_ERROR = "review_error"
    SYNTHESIZING = "synthesizing"
    VERDICT_COMPLETE = "verdict_complete"


# While one of these holds a run owns the session: no other step may start (409).
RUNNING: frozenset[str] = frozenset(
    {
        SessionStatus.BUILD_IN_PROGRESS,
        SessionStatus.EXECUTING,
        SessionStatus.REVIEWING,
        SessionStatus.SYNTHESIZING,
    }
)


class Step(StrEnum):
    """``current_step``: where the session is in the flow (what the UI shows)."""

    INPUT = "input"
    BUILD = "build"
    EDIT = "edit"
    EXECUTE = "execute"
    REVIEW = "review"
    SYNTHESIZE = "synthesize"
    COMPLETE = "complete"


class RunKind(StrEnum):
    """The steps that call the LLM: each one is a leased run (workflow/run_specs.py)."""

    BUILD = "build"
    EXECUTE = "execute"
    REVIEW = "review"
    SYNTHESIZE = "synthesize"


class MemberState(StrEnum):
    """Where one member (an agent answering, a reviewer, the builder, the chairman) is."""

    QUEUED = "queued"
    THINKING = "thinking"
    SEARCHING = "searching"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


FINISHED_MEMBER_STATES: frozenset[str] = frozenset(
    {MemberState.DONE, MemberState.FAILED, MemberState.SKIPPED}
)


class ReasoningEffort(StrEnum):
    """What current models take: "minimal" (GPT-5) and "xhigh" (GPT-5.1 Codex Max) too."""

    NONE = "none"
    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"


EFFORTS: tuple[str, ...] = tuple(e.value for e in ReasoningEffort)
