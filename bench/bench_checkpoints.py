"""Checkpointing one member's answer costs the same whatever the session's size.

For each backend and document size: the median time to store one 4 KB answer as a
checkpoint row (``put_member``, what runs do) next to rewriting the whole document
(``write_state``, what storing an answer in the document would cost).

    .venv/bin/python bench/bench_checkpoints.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the scripts run as `python bench/x.py`
    sys.path.insert(0, str(ROOT))

from bench.common import TextMaker, bench_schema, bench_settings, make_state  # noqa: E402
from council_app.settings import Settings  # noqa: E402
from council_app.store import SessionRow, build_store  # noqa: E402
from council_app.store.base import MemberCheckpoint  # noqa: E402

SIZES = (10_000, 300_000)
ROUNDS = 30


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.2f}"


def measure(settings: Settings, label: str) -> list[tuple[str, int, str, str]]:
    store = build_store(settings)
    store.create_schema()
    maker = TextMaker(7)
    answer = {"entry": {"response": maker.text(4000), "status": "success"}, "usage": {}}
    rows = []
    try:
        for size in SIZES:
            sid = f"session_20261203_120000_{size:012x}"[:40]
            state = make_state(sid, size, maker)
            now = datetime.now(UTC)
            store.create_session(
                SessionRow(sid, "bench", "Q", "idle", "input", None, None, now, now), state, 1
            )
            put, rewrite = [], []
            revision = 1
            for i in range(ROUNDS):
                started = time.perf_counter()
                store.put_member(MemberCheckpoint(sid, "execute", f"m{i}", "run", "done", answer))
                put.append(time.perf_counter() - started)
                started = time.perf_counter()
                store.write_state(sid, state, expected_revision=revision, new_revision=revision + 1)
                rewrite.append(time.perf_counter() - started)
                revision += 1
            rows.append((label, size, _ms(put), _ms(rewrite)))
    finally:
        store.close()
    return rows


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += measure(
            Settings(database_url=f"sqlite:///{tmp}/bench.db", sessions_dir=Path(tmp) / "sessions"),
            "embedded (SQLite + state.json)",
        )
    with bench_schema("bench_ckpt") as url:
        rows += measure(bench_settings(url, state_file_mirror=False), "PostgreSQL")
    print(f"One 4 KB answer stored, median of {ROUNDS} (ms)")
    print(f"{'backend':32} {'document':>9} {'checkpoint row':>15} {'rewrite document':>17}")
    for label, size, put, rewrite in rows:
        print(f"{label:32} {size // 1000:>7} KB {put:>15} {rewrite:>17}")


if __name__ == "__main__":
    main()
