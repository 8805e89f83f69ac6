"""What the state-file mirror costs on PostgreSQL: a progress flush and a step write,
with STATE_FILE_MIRROR on and off (issue 10 point 7: nothing on a flush, <= 10% on a step).

Both stores are what ``build_store`` composes (the legacy-file fallback around
``PostgresStore``, plus ``StateFileMirror`` when on), in one throw-away schema, each with
its own sessions; the two variants alternate round by round so that load from other jobs
on the machine falls on both.  Per size (about 2 KB and 300 KB of JSON):

- *write_state*: one full-document compare-and-set per call, cycling over the sessions,
  timed in the calling thread (what a request or a run waits for).  With the mirror the
  call also serialises the document and queues it; the file is written by the mirror's
  thread.  *drain* is the time ``flush()`` then waits for the queued files (coalesced per
  session), reported per write: it is not on any request's path.
- *progress flush*: ``write_progress`` of one patch per session in one batch (what the
  flusher thread does every 350 ms); the mirror passes it through untouched.

Usage: python bench/bench_mirror.py [--smoke]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import (
    Section,
    Table,
    Target,
    TextMaker,
    bench_schema,
    bench_settings,
    make_state,
    median,
    print_section,
)

from council_app.store import ProgressWrite, SessionRow, StateStore, build_store
from council_app.store.legacy_files import json_bytes
from council_app.store.mirror import StateFileMirror

SIZES = (("2 KB", 2_000), ("300 KB", 300_000))
FLUSHES_PER_ROUND = 5


def mirror_files(store: StateStore) -> int:
    """Files the mirror has written so far (after its queue drained)."""
    assert isinstance(store, StateFileMirror) and store.flush(60)
    return store.written


def open_stores(url: str, sessions_dir: Path) -> dict[str, StateStore]:
    settings = bench_settings(url, sessions_dir=sessions_dir)
    stores = {
        "off": build_store(dataclasses.replace(settings, state_file_mirror=False)),
        "on": build_store(dataclasses.replace(settings, state_file_mirror=True)),
    }
    assert isinstance(stores["on"], StateFileMirror)
    assert not isinstance(stores["off"], StateFileMirror)
    stores["off"].create_schema()
    return stores


def seed(store: StateStore, prefix: str, n: int, size: int, maker: TextMaker) -> dict[str, Any]:
    """``n`` sessions of about ``size`` bytes; returns id -> [state, revision]."""
    sessions: dict[str, Any] = {}
    for i in range(n):
        sid = f"session_20261124_080000_{prefix}{i:05x}"
        state = make_state(sid, size, maker)
        now = datetime.now(UTC)
        row = SessionRow(sid, "bench", "Q", "idle", "input", None, None, now, now)
        store.create_session(row, state, revision=1)
        sessions[sid] = [state, 1]
    if isinstance(store, StateFileMirror):
        store.flush(120)
    return sessions


def step_writes(store: StateStore, sessions: dict[str, Any], writes: int) -> tuple[float, float]:
    """Median seconds per write_state in the caller, and drain seconds per write."""
    ids = list(sessions)
    timings: list[float] = []
    for n in range(writes):
        sid = ids[n % len(ids)]
        state, revision = sessions[sid]
        state["updated_at"] = f"2026-11-24T08:{n // 60 % 60:02d}:{n % 60:02d}+00:00"
        state["status"] = "reviewing" if n % 2 else "review_complete"
        started = time.perf_counter()
        store.write_state(sid, state, expected_revision=revision, new_revision=revision + 1)
        timings.append(time.perf_counter() - started)
        sessions[sid][1] = revision + 1
    drain = 0.0
    if isinstance(store, StateFileMirror):
        started = time.perf_counter()
        assert store.flush(300)
        drain = time.perf_counter() - started
    return median(timings), drain / writes


def progress_flush(store: StateStore, sessions: dict[str, Any], seq: int) -> float:
    """Seconds for one batch of one patch per session (each newer than the stored state)."""
    batch = [
        ProgressWrite(
            sid,
            {"execution_status": {"Analyst": f"Thinking {seq}"}, "progress": {"execution": seq}},
            revision=sessions[sid][1] + 1,
        )
        for sid in sessions
    ]
    started = time.perf_counter()
    rejected = store.write_progress(batch)
    elapsed = time.perf_counter() - started
    assert not rejected, rejected[:3]
    for write in batch:
        sessions[write.session_id][1] = write.revision
    return elapsed


def caller_cost(state: dict[str, Any], repeat: int = 50) -> float:
    """Median seconds of what the mirror adds to the calling thread: serialising the
    document (queueing it is a dict assignment under a lock)."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        json_bytes(state)
        timings.append(time.perf_counter() - started)
    return median(timings)


def run(smoke: bool = False) -> Section:
    started = time.perf_counter()
    rounds = 3 if smoke else 30
    n_sessions = 5 if smoke else 20
    writes = 10 if smoke else 20
    maker = TextMaker(7)
    section = Section("State-file mirror (bench/bench_mirror.py, issue 10 point 7)")
    step_rows: list[list[Any]] = []
    flush_rows: list[list[Any]] = []
    sessions_dir = Path(tempfile.mkdtemp(prefix="council-bench-mirror-"))
    try:
        with bench_schema() as url:
            stores = open_stores(url, sessions_dir)
            try:
                for label, size in SIZES:
                    tag = "a" if size < 10_000 else "b"
                    data = {
                        v: seed(stores[v], f"{tag}{i}", n_sessions, size, maker)
                        for i, v in enumerate(("off", "on"))
                    }
                    step: dict[str, list[float]] = {"off": [], "on": []}
                    drain: list[float] = []
                    flush: dict[str, list[float]] = {"off": [], "on": []}
                    for r in range(rounds):
                        order = ("off", "on") if r % 2 == 0 else ("on", "off")
                        for v in order:
                            per_call, per_write_drain = step_writes(stores[v], data[v], writes)
                            step[v].append(per_call)
                            if v == "on":
                                drain.append(per_write_drain)
                        # Flushes interleaved one by one: the same code path on both sides.
                        samples: dict[str, list[float]] = {"off": [], "on": []}
                        written = mirror_files(stores["on"])
                        for k in range(FLUSHES_PER_ROUND):
                            for v in order:
                                samples[v].append(progress_flush(stores[v], data[v], r * 100 + k))
                        assert mirror_files(stores["on"]) == written  # not one file written
                        for v in order:
                            flush[v].append(median(samples[v]))
                    # Medians of per-round ratios: load from other jobs moves both variants.
                    ratio = median([b / a for a, b in zip(step["off"], step["on"], strict=True)])
                    caller = caller_cost(next(iter(data["on"].values()))[0])
                    off_ms, on_ms = median(step["off"]) * 1000, median(step["on"]) * 1000
                    step_rows.append(
                        [
                            label,
                            off_ms,
                            on_ms,
                            on_ms / off_ms,
                            ratio,
                            caller * 1000,
                            median(drain) * 1000,
                        ]
                    )
                    f_ratio = median(
                        [b / a for a, b in zip(flush["off"], flush["on"], strict=True)]
                    )
                    flush_rows.append(
                        [
                            label,
                            n_sessions,
                            median(flush["off"]) * 1000,
                            median(flush["on"]) * 1000,
                            f_ratio,
                        ]
                    )
                mirror = stores["on"]
                assert isinstance(mirror, StateFileMirror)
                failures = mirror.failures
                files_written = mirror.written
            finally:
                for store in stores.values():
                    store.close()
    finally:
        shutil.rmtree(sessions_dir, ignore_errors=True)
    section.tables.append(
        Table(
            "write_state (a step write): median ms per call in the caller",
            [
                "document",
                "mirror off",
                "mirror on",
                "ratio of medians",
                "ratio (median per round)",
                "mirror work in the caller",
                "drain ms/write (background)",
            ],
            step_rows,
        )
    )
    section.tables.append(
        Table(
            "progress flush: median ms per write_progress batch",
            ["document", "sessions", "mirror off", "mirror on", "ratio (median per round)"],
            flush_rows,
        )
    )
    worst_step = max(r[4] for r in step_rows)
    worst_flush = max(r[4] for r in flush_rows)
    section.targets.append(
        Target(
            "10.7a",
            "the mirror adds <= 10% to a step write",
            worst_step <= 1.10,
            ", ".join(f"{r[0]} {r[4]:.2f}x" for r in step_rows)
            + " (mirror on / off, median of per-round ratios)",
        )
    )
    section.targets.append(
        Target(
            "10.7b",
            "the mirror adds nothing to a progress flush",
            worst_flush <= 1.10,  # the same code path: the margin is timing noise
            ", ".join(f"{r[0]} {r[4]:.2f}x" for r in flush_rows) + " (mirror on / off)",
        )
    )
    section.notes.append("the mirror wrote no file during any progress flush (checked every round)")
    section.notes.append(
        f"{rounds} rounds x {writes} step writes over {n_sessions} sessions per size and "
        f"variant; files written by the mirror: {files_written:,} (coalesced per session), "
        f"failures: {failures}"
    )
    section.seconds = time.perf_counter() - started
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    args = parser.parse_args(argv)
    print_section(run(args.smoke))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
