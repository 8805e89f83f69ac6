"""One bounded pool per process for every background run: its members and its bookkeeping.

Without it each run started its own pool (up to ``COUNCIL_MAX_PARALLEL`` threads), so LLM
calls in flight and threads grew with the number of councils running at once.  With it a
run submits at most ``COUNCIL_MAX_PARALLEL`` lanes to the shared pool, each lane asks its
members one after another, and the pool runs at most ``LLM_MAX_CONCURRENCY`` lanes at
once: that many LLM calls in flight per process, whatever the number of councils (the
others wait their turn in the queue, their leases kept by the process's lease keeper).

A run holds no thread of its own while its members wait: what comes after the members
runs in the thread of the lane that ends last, so the threads of a busy worker stay at
the pool's size however many councils it holds (issue 16).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, size, pool)


def member_pool(size: int) -> ThreadPoolExecutor:
    """The process's pool of ``size`` threads (a pool inherited through fork has none)."""
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != size:
            _pool = (os.getpid(), size, ThreadPoolExecutor(size, thread_name_prefix="llm-member"))
        return _pool[2]


def start_members(
    todo: list[int],
    work: Callable[[int], None],
    lanes: int,
    pool_size: int,
    then: Callable[[BaseException | None], None],
) -> None:
    """Start ``work(i)`` for every ``i`` of ``todo`` and return at once: at most ``lanes``
    at a time for this run, at most ``pool_size`` across the process.

    ``then(error)`` runs exactly once, after every lane stopped, in the thread of the
    last one (here and now when ``todo`` is empty): ``error`` is the first a lane raised
    (that lane stops, the others go on), else None.
    """
    queue = deque(todo)
    lock = threading.Lock()
    errors: list[BaseException] = []
    count = min(max(1, lanes), len(todo))
    left = [count]
    if not count:
        then(None)
        return

    def lane_over(error: BaseException | None) -> None:
        with lock:
            if error is not None:
                errors.append(error)
            left[0] -= 1
            last = left[0] == 0
        if last:
            then(errors[0] if errors else None)

    def lane() -> None:
        error: BaseException | None = None
        try:
            while True:
                with lock:
                    if not queue:
                        break
                    index = queue.popleft()
                work(index)
        except BaseException as e:  # handed to ``then``
            error = e
        lane_over(error)

    pool = member_pool(pool_size)
    for _ in range(count):
        try:
            pool.submit(lane)
        except RuntimeError as e:  # the interpreter is exiting: no new work is taken
            lane_over(e)
