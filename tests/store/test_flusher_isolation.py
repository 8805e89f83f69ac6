"""A flush never loses a batch because of one entry, and acknowledged progress is never
replaced: external reports and a run's progress both land, under their own rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from council_app.flusher import ProgressFlusher
from council_app.revisions import RevisionClock
from council_app.state import SessionStates
from council_app.store import StateStore
from tests.store.test_flusher import NEVER, seed


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"x": value}
    return value


POISONS: dict[str, dict[str, Any]] = {
    "lone surrogate": {"progress": {"note": "\ud800"}},
    "too deep for orjson": {"progress": deep(300)},
    "integer beyond 64 bits": {"progress": {"n": 2**70}},
    "NUL (PostgreSQL only)": {"progress": {"note": "a\x00b"}},
}


@pytest.fixture
def parts(store: StateStore) -> Iterator[tuple[StateStore, ProgressFlusher, SessionStates]]:
    clock = RevisionClock()
    flusher = ProgressFlusher(store, NEVER, clock)
    yield store, flusher, SessionStates(store, flusher, clock)
    flusher.stop(timeout=5)


@pytest.mark.parametrize("poison", list(POISONS))
def test_one_poisoned_entry_among_fifty_sessions_does_not_sink_the_rest(parts, poison) -> None:
    store, flusher, states = parts
    if poison.startswith("NUL") and store.backend != "postgresql":
        pytest.skip("SQLite keeps a NUL inside JSON text")
    ids = seed(store, flusher.clock, 50)
    bad = ids[17]
    for i, s in enumerate(ids):
        states.progress(s, POISONS[poison] if s == bad else {"progress": {"execution": i}})
    flusher.flush(timeout=5)
    landed = [
        s for i, s in enumerate(ids) if store.load(s).state.get("progress") == {"execution": i}
    ]
    assert len(landed) == 49 and bad not in landed
    assert flusher.stats.rejected == 1
    assert flusher.stats.rejected_sessions == [bad]
    assert flusher.pending_sessions == 0  # dropped, not retried forever
    # The next interval is clean again, the poisoned session included.
    states.progress(bad, {"progress": {"execution": 99}})
    assert flusher.flush(timeout=5)
    assert store.load(bad).state["progress"] == {"execution": 99}
    assert flusher.stats.rejected == 1


def test_external_report_and_run_progress_in_one_interval_both_land(parts) -> None:
    store, flusher, states = parts
    (s,) = seed(store, flusher.clock, 1)
    run = "run-1"
    states.update(s, lambda doc: doc.update(run={"id": run, "kind": "execute"}))
    accepted = 0
    for i in range(10):  # interleaved, all in the same interval
        states.progress(s, {"execution_status": {f"ext{i}": "done"}})
        accepted += 1
        states.progress(s, {"progress": {"execution": i * 10}}, run_id=run)
        accepted += 1
    assert flusher.flush(timeout=5)
    hot = store.load(s).state
    assert hot["execution_status"] == {f"ext{i}": "done" for i in range(10)}
    assert hot["progress"] == {"execution": 90}
    assert flusher.stats.updates_accepted == accepted
    assert flusher.stats.stale_rejected == 0


def test_run_progress_is_refused_once_the_run_is_not_current(parts) -> None:
    store, flusher, states = parts
    (s,) = seed(store, flusher.clock, 1)
    states.update(s, lambda doc: doc.update(run={"id": "new-run"}))
    states.progress(s, {"progress": {"execution": 50}}, run_id="old-run")  # newer revision...
    assert flusher.flush(timeout=5)
    assert flusher.stats.stale_rejected == 1  # ...but the store applied the run rule
    assert store.load(s).state.get("progress") is None


def test_reads_see_both_entries_before_the_flush(parts) -> None:
    store, _flusher, states = parts
    (s,) = seed(store, _flusher.clock, 1)
    states.update(s, lambda doc: doc.update(run={"id": "r"}))
    states.progress(s, {"execution_status": {"ext": "x"}})
    states.progress(s, {"execution_status": {"A": "Thinking"}}, run_id="r")
    assert states.hot(s)[1]["execution_status"] == {"ext": "x", "A": "Thinking"}
