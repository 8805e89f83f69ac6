"""One bounded pool per process for the members of every background run.

Without it each run started its own pool (up to ``COUNCIL_MAX_PARALLEL`` threads), so LLM
calls in flight and threads grew with the number of councils running at once.  With it a
run submits at most ``COUNCIL_MAX_PARALLEL`` lanes to the shared pool, each lane asks its
members one after another, and the pool runs at most ``LLM_MAX_CONCURRENCY`` lanes at
once: that many LLM calls in flight per process, whatever the number of councils (the
others wait their turn in the queue, their leases kept by the run's heartbeat).
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


def run_members(todo: list[int], work: Callable[[int], None], lanes: int, pool_size: int) -> None:
    """``work(i)`` for every ``i`` of ``todo``, at most ``lanes`` at once for this run and
    at most ``pool_size`` across the process; re-raises the first error after all lanes
    stopped."""
    queue = deque(todo)
    lock = threading.Lock()

    def lane() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index = queue.popleft()
            work(index)

    pool = member_pool(pool_size)
    futures = [pool.submit(lane) for _ in range(max(1, min(lanes, len(todo))))]
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
