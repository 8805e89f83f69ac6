"""Start several callables at the same instant, the way gunicorn starts its workers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence


def create_schemas_together(stores: Sequence[object], timeout: float = 60) -> list[BaseException]:
    """Call ``create_schema()`` on every store at once (a barrier releases them together);
    return what they raised, so the test asserts on it."""
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def start(create: Callable[[], object]) -> None:
        barrier.wait()
        try:
            create()
        except BaseException as e:  # collected and asserted by the caller
            errors.append(e)

    threads = [
        threading.Thread(target=start, args=(s.create_schema,))  # type: ignore[attr-defined]
        for s in stores
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors
