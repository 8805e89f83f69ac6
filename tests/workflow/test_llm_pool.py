"""The process-wide member pool: LLM work in flight is bounded over all runs at once.

Counted with real threads: many runs submit their members at the same time; the most
members ever working at once never passes the pool size, no run has more than its lanes
working, every member is done exactly once, and an error in one member reaches its run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from council_app.workflow import llm_pool


def run_members(todo: list[int], work: object, lanes: int, pool_size: int) -> None:
    """Start the members and wait for ``then``; re-raise the error it was given."""
    ended = threading.Event()
    given: list[BaseException | None] = []

    def then(error: BaseException | None) -> None:
        given.append(error)
        ended.set()

    llm_pool.start_members(todo, work, lanes, pool_size, then)  # type: ignore[arg-type]
    assert ended.wait(30)
    assert len(given) == 1  # exactly once
    if given[0] is not None:
        raise given[0]


def test_members_of_many_runs_share_one_bounded_pool() -> None:
    pool_size, lanes, runs, members = 4, 3, 12, 5
    lock = threading.Lock()
    working = 0
    most = 0
    per_run_now: Counter[int] = Counter()
    per_run_most: Counter[int] = Counter()
    done: Counter[tuple[int, int]] = Counter()

    def run(r: int) -> None:
        def work(i: int) -> None:
            nonlocal working, most
            with lock:
                working += 1
                per_run_now[r] += 1
                most = max(most, working)
                per_run_most[r] = max(per_run_most[r], per_run_now[r])
            time.sleep(0.01)  # an LLM call's wait
            with lock:
                working -= 1
                per_run_now[r] -= 1
                done[(r, i)] += 1

        run_members(list(range(members)), work, lanes, pool_size)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert sorted(done) == [(r, i) for r in range(runs) for i in range(members)]
    assert set(done.values()) == {1}
    assert most == pool_size  # saturated, never over
    assert max(per_run_most.values()) <= lanes


def test_an_error_in_a_member_reaches_its_run_after_the_others() -> None:
    seen: list[int] = []

    def work(i: int) -> None:
        if i == 2:
            raise RuntimeError("member 2 failed")
        seen.append(i)

    with pytest.raises(RuntimeError, match="member 2 failed"):
        run_members([0, 1, 2, 3, 4, 5], work, 2, 3)
    assert 2 not in seen and len(seen) >= 4  # the other lane went on


def test_the_pool_is_per_process_and_per_size() -> None:
    a = llm_pool.member_pool(3)
    assert llm_pool.member_pool(3) is a
    assert llm_pool.member_pool(5) is not a


def test_start_returns_at_once_and_then_runs_once_after_the_last_member() -> None:
    release = threading.Event()
    done: list[int] = []
    ended: list[tuple[BaseException | None, list[int]]] = []
    finished = threading.Event()

    def work(i: int) -> None:
        assert release.wait(10)
        done.append(i)

    def then(error: BaseException | None) -> None:
        ended.append((error, sorted(done)))
        finished.set()

    llm_pool.start_members([0, 1, 2, 3], work, 2, 3, then)
    assert ended == []  # returned while every member still waits
    release.set()
    assert finished.wait(10)
    assert ended == [(None, [0, 1, 2, 3])]


def test_nothing_to_do_runs_then_here_and_now() -> None:
    ended: list[BaseException | None] = []
    llm_pool.start_members([], lambda i: None, 3, 3, ended.append)
    assert ended == [None]
