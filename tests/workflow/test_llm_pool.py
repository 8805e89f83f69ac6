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

        llm_pool.run_members(list(range(members)), work, lanes, pool_size)

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
        llm_pool.run_members([0, 1, 2, 3, 4, 5], work, 2, 3)
    assert 2 not in seen and len(seen) >= 4  # the other lane went on


def test_the_pool_is_per_process_and_per_size() -> None:
    a = llm_pool.member_pool(3)
    assert llm_pool.member_pool(3) is a
    assert llm_pool.member_pool(5) is not a
