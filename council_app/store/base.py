"""The storage interface every backend implements, and its backend-neutral errors.

A session's state is one JSON document (the legacy ``state.json`` format).  Its small, hot
keys (the ones ``/status`` returns and progress updates touch) are kept apart in a
``progress`` column so that a progress flush and a status poll never touch the large, cold
document.  Readers always see one document: ``StoredState.state`` has the hot keys merged in.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

# Keys kept in the small hot column.  A state write copies them there; progress flushes
# deep-merge into it; every read overlays it on the document.
HOT_KEYS: tuple[str, ...] = (
    "status",
    "current_step",
    "execution_status",
    "review_status",
    "execution_error",
    "review_error",
    "progress",
    "tokens",
    "run",  # lease of the background run: owner, heartbeat deadline, cancel request
    "members",  # typed state of each run member: {kind: {name: {state, text, preview}}}
)


class StoreError(Exception):
    """Base of every storage error the rest of the app sees."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or did not answer in time; retry later (HTTP 503)."""


class RevisionConflict(StoreError):
    """A compare-and-set write lost: the stored revision moved on since it was read."""


class StoreDataError(StoreError):
    """The database or the serialiser refused the data itself (NUL, a lone surrogate, too
    deep): retrying the same write cannot succeed.  The flusher isolates such an entry."""


def refused_data(error: BaseException) -> str | None:
    """Why ``error`` means "this data cannot be stored", or None: orjson's refusals (also
    wrapped by SQLAlchemy's bind processing) and psycopg2's NUL-in-a-string ValueError."""
    orig = getattr(error, "orig", None)
    for candidate in (error, orig):
        if isinstance(candidate, orjson.JSONEncodeError):
            return f"not serialisable: {candidate}"
        if isinstance(candidate, ValueError) and "NUL" in str(candidate):
            return str(candidate)
    return None


@dataclass
class SessionRow:
    """Metadata of one session: what listings and ownership checks need."""

    session_id: str
    user_id: str
    question: str
    status: str
    current_step: str
    cost_usd: float | None
    total_tokens: int | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def from_db(cls, row: Any) -> SessionRow:
        """From a row of the ``sessions`` table (either backend)."""
        return cls(
            session_id=row.id,
            user_id=row.user_id,
            question=row.question or "",
            status=row.status,
            current_step=row.current_step,
            cost_usd=row.cost,
            total_tokens=row.total_tokens,
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted_at=row.deleted_at,
        )


@dataclass(frozen=True)
class HotRow:
    """The metadata a poll needs next to the hot keys: the owner, the deletion and the
    status columns (fallbacks for a document without them).  Fewer columns than
    ``SessionRow``: /status reads this on every poll (issue 16)."""

    session_id: str
    user_id: str
    status: str
    current_step: str
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, row: SessionRow) -> HotRow:
        return cls(row.session_id, row.user_id, row.status, row.current_step, row.deleted_at)


@dataclass
class StoredState:
    state: dict[str, Any]
    revision: int  # 0 when the session has no row yet (a legacy file read as a fallback)


@dataclass(frozen=True)
class ListCursor:
    """Where a page of a listing ended: the last row's sort key (created_at desc, id desc).

    Keyset pagination: the next page starts strictly after this key, so a page 10,000 rows
    deep costs what the first one does (an offset makes the database walk and drop them).
    """

    created_at: datetime
    session_id: str

    @classmethod
    def after(cls, row: SessionRow) -> ListCursor:
        return cls(row.created_at, row.session_id)

    def admits(self, row: SessionRow) -> bool:
        """True for rows that sort after the cursor (older, or as old with a smaller id)."""
        return (row.created_at, row.session_id) < (self.created_at, self.session_id)


@dataclass
class DocumentView:
    """Parts of a session's document read for one response, large ones left as JSON text.

    ``small`` holds the named small keys the document has (hot keys overlaid, as ``load``
    does); ``raw`` the JSON text of each named large key, ``None`` when the document has
    none.  A response can then be assembled around the large values without parsing and
    re-serialising them (a completed session is hundreds of KB).
    """

    row: SessionRow
    small: dict[str, Any]
    raw: dict[str, str | None]


def document_view(
    row: SessionRow, state: dict[str, Any], small_keys: tuple[str, ...], raw_keys: tuple[str, ...]
) -> DocumentView:
    """The view of an already parsed document (embedded backend, legacy files, fallbacks)."""
    small = {k: state[k] for k in small_keys if k in state}
    raw = {k: (orjson.dumps(state[k]).decode() if k in state else None) for k in raw_keys}
    return DocumentView(row, small, raw)


@dataclass
class ProgressWrite:
    """One dirty session in a flush: a deep-merge patch of hot keys, and its revision.

    A patch sent by a background run names the run (``run_id``): it applies exactly while
    that run is the session's current one (``run.id`` in the hot keys), whatever else was
    written meanwhile (a cancel request, say), and never once the run was replaced or
    declared dead.  A patch without a run applies only when newer than the stored revision.
    Either way the stored revision never goes down.
    """

    session_id: str
    patch: dict[str, Any]
    revision: int
    meta: dict[str, Any] = field(default_factory=dict)  # cost_usd / total_tokens to sync
    run_id: str | None = None


@dataclass
class MemberCheckpoint:
    """One finished member of a run, stored the moment it arrived (table ``run_members``).

    ``run_id`` is the run's root id (it survives takeovers); ``result`` holds the member's
    entry as the document will show it plus what it cost (``usage``), so a resumed run
    neither asks again nor counts the cost twice.
    """

    session_id: str
    step: str
    member: str
    run_id: str
    state: str  # domain.MemberState
    result: dict[str, Any]


def progress_applies(write: ProgressWrite, stored_revision: int, stored_hot: Any) -> bool:
    """The rule above, for backends that decide in Python (PostgreSQL decides in SQL)."""
    if write.run_id is not None:
        run = stored_hot.get("run") if isinstance(stored_hot, dict) else None
        return isinstance(run, dict) and run.get("id") == write.run_id
    return stored_revision < write.revision


def json_text(value: Any) -> str:
    """JSON for the database driver (orjson: the documents are large)."""
    return orjson.dumps(value).decode()


def deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``target`` in place: dicts merge recursively, other values replace.

    The PostgreSQL function ``council_jsonb_merge`` implements the same rule, so a patch
    means the same thing in memory, in SQLite and in PostgreSQL.
    """
    for key, value in patch.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            deep_merge(current, value)
        else:
            target[key] = _copy(value)
    return target


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def hot_part(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state[k] for k in HOT_KEYS if k in state}


def overlay_hot(state: dict[str, Any], hot: dict[str, Any] | None) -> dict[str, Any]:
    """The document as callers see it: the hot column is authoritative for its keys."""
    if hot:
        state.update(hot)
    return state


def derive_status(state: dict[str, Any]) -> str:
    """The document's status; older files have none, so say what their content shows."""
    status = state.get("status")
    if isinstance(status, str) and status:
        return status[:32]
    if state.get("chairman_verdict"):
        return "verdict_complete"
    if state.get("peer_reviews"):
        return "review_complete"
    if state.get("execution_results"):
        return "execution_complete"
    return "idle"


_BIGINT = 2**63


def meta_from_state(state: dict[str, Any]) -> dict[str, Any]:
    """The metadata columns a state write keeps in step with the document (bounded to the
    columns' types: the document itself keeps whatever it holds)."""
    found = state.get("tokens")
    tokens: dict[str, Any] = found if isinstance(found, dict) else {}
    cost = tokens.get("total_cost_usd")
    total = tokens.get("total_tokens")
    step = state.get("current_step")
    return {
        "question": state.get("question") if isinstance(state.get("question"), str) else "",
        "status": derive_status(state),
        "current_step": step[:32] if isinstance(step, str) and step else "input",
        "cost": float(cost)
        if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        "total_tokens": int(total)
        if isinstance(total, int | float) and not isinstance(total, bool) and abs(total) < _BIGINT
        else None,
    }


class StateStore(abc.ABC):
    """What the app needs from storage.  Implementations raise only ``StoreError`` subclasses."""

    backend: str

    @abc.abstractmethod
    def create_schema(self, *, adopt_legacy: bool = False) -> None:
        """Bring the schema to head idempotently; safe when several workers start at once.
        ``adopt_legacy``: move the old server's tables aside (schema_versions) instead of
        refusing them."""

    @abc.abstractmethod
    def create_session(self, row: SessionRow, state: dict[str, Any], revision: int) -> None:
        """Insert a new session's metadata and state in one transaction."""

    @abc.abstractmethod
    def get_session(self, session_id: str) -> SessionRow | None:
        """Metadata, including soft-deleted sessions (callers answer 410 for those)."""

    @abc.abstractmethod
    def list_sessions(
        self,
        user_id: str,
        limit: int,
        offset: int = 0,
        *,
        after: ListCursor | None = None,
        query: str | None = None,
    ) -> list[SessionRow]:
        """The user's live sessions, newest first (created_at desc, id desc): ``offset`` rows
        skipped, or (keyset) only those after the cursor ``after``; ``query``, when given,
        keeps the sessions whose question contains it (case-insensitive)."""

    @abc.abstractmethod
    def running_sessions(self) -> list[str]:
        """Ids of live sessions whose status says a background run is going on."""

    @abc.abstractmethod
    def load(self, session_id: str) -> StoredState | None:
        """The whole document with its hot keys merged in, and its revision."""

    def read_view(
        self, session_id: str, small_keys: tuple[str, ...], raw_keys: tuple[str, ...]
    ) -> DocumentView | None:
        """Metadata, the named small keys parsed and the named large keys as JSON text.

        None when the session has no metadata or no document here (callers fall back to
        ``get_session`` and ``load``, which also know legacy files).  This default parses
        the document; a backend that can hand out JSON text without parsing overrides it.
        Large keys must not be hot keys (the hot column is overlaid on ``small`` only).
        """
        row = self.get_session(session_id)
        stored = self.load(session_id) if row is not None else None
        if row is None or stored is None:
            return None
        return document_view(row, stored.state, small_keys, raw_keys)

    @abc.abstractmethod
    def load_hot(self, session_id: str) -> tuple[HotRow, dict[str, Any]] | None:
        """Metadata and the hot keys only: the cost of this read must not grow with the state."""

    def load_hot_many(self, session_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The hot keys of each of these sessions that has a document, by id.

        For the process-wide lease keeper and the takeover sweep, which look at every run
        they know of each half second: a backend answers all of them with one statement
        (this default asks one by one).
        """
        found = {}
        for sid in session_ids:
            hot = self.load_hot(sid)
            if hot is not None:
                found[sid] = hot[1]
        return found

    @abc.abstractmethod
    def write_state(
        self, session_id: str, state: dict[str, Any], *, expected_revision: int, new_revision: int
    ) -> None:
        """Replace the document if the stored revision is still ``expected_revision``.

        Also resets the hot column to the document's hot keys and syncs the metadata row.
        Raises ``RevisionConflict`` when another writer got there first.
        """

    @abc.abstractmethod
    def write_progress(self, writes: list[ProgressWrite]) -> list[str]:
        """Apply a batch of progress patches in one transaction; return the ids rejected as
        stale (stored revision not older than the patch's)."""

    @abc.abstractmethod
    def put_member(self, checkpoint: MemberCheckpoint) -> None:
        """Store (or replace) one member's checkpoint; one small row, one transaction."""

    @abc.abstractmethod
    def run_members(self, run_id: str) -> list[MemberCheckpoint]:
        """Every checkpoint of a run (by root id), in no particular order."""

    @abc.abstractmethod
    def drop_members(self, session_id: str, keep_run_id: str | None = None) -> int:
        """Remove a session's checkpoints, except those of ``keep_run_id``; returns how many."""

    @abc.abstractmethod
    def mark_deleted(self, session_id: str, *, hard: bool) -> None:
        """Soft delete (tombstone); ``hard`` also drops the stored state."""

    @abc.abstractmethod
    def ping(self) -> None:
        """A trivial round trip; raises StoreUnavailable."""

    def last_written(self, session_ids: list[str]) -> dict[str, datetime]:
        """Which of these sessions have metadata here, and when each was last written.

        The legacy-file fallback asks it in bulk (listings, start-up); this default asks
        one by one, and the SQL backends override it with one query per 1000 ids.
        """
        found: dict[str, datetime] = {}
        for sid in session_ids:
            row = self.get_session(sid)
            if row is not None:
                found[sid] = row.updated_at
        return found

    def after_fork(self) -> None:  # noqa: B027 - optional hook
        """Drop connections inherited from the parent process."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections at shutdown."""

    # -- spend per user and UTC day (budget.py) --------------------------------------------

    @abc.abstractmethod
    def add_spend(self, user_id: str, day: date, cost_usd: float, calls: int = 1) -> None:
        """Add to the user's spend of ``day`` atomically (an upsert-increment: concurrent
        workers and hosts never lose each other's additions)."""

    @abc.abstractmethod
    def spend_on(self, user_id: str, day: date) -> float:
        """What the user spent on ``day`` in USD (0.0 when nothing was recorded)."""
