"""Benchmark of ``migrate_state.py`` against the raw batched-upsert rate of the same database.

For each tree (10,000 x 20 KB, 1,000 x 300 KB, and 2,500 x 20 KB to show that memory does
not grow with the tree) it generates legacy files, times a first migration (a real subprocess,
whose peak RSS comes from ``os.wait4``), a second run (everything unchanged), and a raw
multi-row ``INSERT ... ON CONFLICT DO UPDATE`` of the same rows in batches of the same size,
then prints one table.  ``--smoke`` does 200 x 20 KB in a few seconds (CI).

The database is ``BENCH_DATABASE_URL`` (default: the ``test`` database); every run gets
its own schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg2.extras  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from council_app.settings import normalize_database_url  # noqa: E402
from council_app.store.base import hot_part  # noqa: E402
from council_app.store.scratch import scratch_schema  # noqa: E402
from tests.migration.legacy_tree import write_tree  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 500

# (label, sessions, bytes per state)
FULL = [("10,000 x 20 KB", 10_000, 20_000), ("1,000 x 300 KB", 1_000, 300_000)]
GROWTH = ("2,500 x 20 KB", 2_500, 20_000)  # same shape, a quarter of the tree: RSS must match
SMOKE = [("200 x 20 KB", 200, 20_000)]


@dataclass
class Result:
    label: str
    sessions: int
    mbytes: float
    seconds: float
    rerun_seconds: float
    raw_rows_per_s: float
    peak_rss_mb: float
    migrated: int

    @property
    def rate(self) -> float:
        return self.sessions / self.seconds

    @property
    def ratio(self) -> float:
        return self.rate / self.raw_rows_per_s


def bench_schema(base_url: str) -> AbstractContextManager[str]:
    """A fresh schema; the URL returned has it as search_path.  Dropped on the way out."""
    return scratch_schema(base_url, "bench")


# Linux keeps the forking process's peak RSS in a child's ru_maxrss across exec, and this
# process holds whole trees in memory, so the tool is started by a small fresh launcher
# whose own children start small: their getrusage peak is the tool's alone.
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_tool(url: str, sessions_dir: Path, cwd: Path) -> tuple[float, float, dict]:
    """One ``migrate_state.py`` run as a subprocess: seconds, peak RSS (MB), JSON summary."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    rss_file = cwd / "maxrss"
    cmd = [sys.executable, "-c", _LAUNCHER, str(rss_file)]
    cmd += [sys.executable, str(ROOT / "migrate_state.py"), "--quiet", "--json"]
    cmd += ["--sessions-dir", str(sessions_dir), "--batch-size", str(BATCH)]
    checkpoint(url)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"migrate_state.py exited {proc.returncode}: {proc.stdout[-2000:]!r}")
    return seconds, int(rss_file.read_text()) / 1024, orjson.loads(proc.stdout)


def checkpoint(url: str) -> None:
    """Start each timed phase with no dirty buffers left by the previous one (if allowed)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CHECKPOINT"))
    except sa.exc.DBAPIError:
        pass  # not a superuser: the figures are just noisier
    finally:
        engine.dispose()


def raw_upsert_rate(url: str, sessions_dir: Path) -> float:
    """Rows/s of a plain multi-row upsert of the same documents, read into memory first."""
    rows = []
    for entry in os.scandir(sessions_dir):
        text = (Path(entry.path) / "state.json").read_text()
        hot = orjson.dumps(hot_part(orjson.loads(text))).decode()
        rows.append((entry.name, text, hot, 1, "2025-12-10T16:07:42+00:00"))
    engine = sa.create_engine(url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "CREATE TABLE session_state (session_id varchar(128) PRIMARY KEY, state jsonb, "
            "progress jsonb, revision bigint NOT NULL, updated_at timestamptz NOT NULL)"
        )
        raw.commit()
        checkpoint(url)
        started = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO session_state (session_id, state, progress, revision, updated_at) "
                "VALUES %s ON CONFLICT (session_id) DO UPDATE SET state = EXCLUDED.state, "
                "progress = EXCLUDED.progress, revision = EXCLUDED.revision, "
                "updated_at = EXCLUDED.updated_at",
                rows[i : i + BATCH],
                template="(%s, %s::jsonb, %s::jsonb, %s, %s::timestamptz)",
                page_size=BATCH,
            )
            raw.commit()
        seconds = time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()
    return len(rows) / seconds


def bench_one(base_url: str, label: str, count: int, size: int, work: Path, repeat: int) -> Result:
    """Best of ``repeat`` rounds (a shared machine is noisy), alternating tool and raw."""
    tree = work / f"tree_{count}_{size}"
    write_tree(tree, count, size)
    mbytes = sum((Path(e.path) / "state.json").stat().st_size for e in os.scandir(tree)) / 1e6
    seconds, rerun, raw_rate, rss = float("inf"), float("inf"), 0.0, 0.0
    for _ in range(repeat):
        with bench_schema(base_url) as url:
            first, peak, summary = run_tool(url, tree, work)
            second, _, again = run_tool(url, tree, work)
        if summary["counts"]["migrated"] != count or again["counts"]["unchanged"] != count:
            raise SystemExit(f"{label}: unexpected {summary['counts']} / {again['counts']}")
        with bench_schema(base_url) as url:
            raw_rate = max(raw_rate, raw_upsert_rate(url, tree))
        seconds, rerun, rss = min(seconds, first), min(rerun, second), max(rss, peak)
    shutil.rmtree(tree)
    return Result(label, count, mbytes, seconds, rerun, raw_rate, rss, count)


def print_table(results: list[Result]) -> None:
    head = (
        f"{'tree':<16}{'MB':>7}{'migrate s':>11}{'sessions/s':>12}{'MB/s':>8}"
        f"{'raw rows/s':>12}{'ratio':>7}{'rerun s':>9}{'peak RSS MB':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.label:<16}{r.mbytes:>7.0f}{r.seconds:>11.2f}{r.rate:>12.0f}"
            f"{r.mbytes / r.seconds:>8.1f}{r.raw_rows_per_s:>12.0f}{r.ratio:>7.2f}"
            f"{r.rerun_seconds:>9.2f}{r.peak_rss_mb:>13.0f}"
        )
    print(
        "migrate s: wall time of the whole tool (start-up, file reads, parse, metadata, both "
        "tables);\nraw rows/s: batched multi-row upsert of the same rows into session_state "
        f"only, documents already in memory, {BATCH} rows per statement and transaction;\n"
        "ratio: sessions/s over raw rows/s (best round of each); rerun s: second run, all "
        "unchanged;\npeak RSS: ru_maxrss of the tool's process."
    )


def scale(base_url: str, count: int) -> int:
    """Flat memory at scale: ``count`` x 20 KB and 2,500 x 20 KB, one migration each; prints
    one ``SCALE`` line (read by run_all.py) and a sentence."""
    small = min(2_500, max(1, count // 4))
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench_migration_scale_") as tmp:
        for n in (small, count):
            tree = Path(tmp) / f"tree_{n}"
            written = time.perf_counter()
            write_tree(tree, n, 20_000)
            write_s = time.perf_counter() - written
            with bench_schema(base_url) as url:
                seconds, peak, summary = run_tool(url, tree, Path(tmp))
            if summary["counts"]["migrated"] != n:
                raise SystemExit(f"{n}: unexpected {summary['counts']}")
            shutil.rmtree(tree)
            figures[n] = (seconds, peak, write_s)
            print(f"done: {n:,} x 20 KB", file=sys.stderr, flush=True)
    (_, rss_small, _), (s_big, rss_big, w_big) = figures[small], figures[count]
    print(
        f"SCALE sessions={count} seconds={s_big:.1f} rate={count / s_big:.0f} "
        f"peak_rss_mb={rss_big:.0f} small_sessions={small} small_peak_rss_mb={rss_small:.0f} "
        f"tree_write_s={w_big:.0f}"
    )
    print(
        f"{count:,} x 20 KB migrated in {s_big:.0f} s ({count / s_big:,.0f} sessions/s), peak "
        f"RSS {rss_big:.0f} MB; {small:,} x 20 KB: peak RSS {rss_small:.0f} MB."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="200 x 20 KB only, a few seconds")
    parser.add_argument(
        "--repeat", type=int, default=None, help="rounds per tree, best kept (default 2; smoke 1)"
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        help="one tree of N x 20 KB migrated once, its peak RSS beside 2,500's (flat memory)",
    )
    args = parser.parse_args(argv)
    raw_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL
    base_url = normalize_database_url(raw_url)[0]
    if args.scale:
        return scale(base_url, args.scale)
    trees = SMOKE if args.smoke else [FULL[0], GROWTH, FULL[1]]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_migration_") as tmp:
        for label, count, size in trees:
            repeat = args.repeat or (1 if args.smoke else 2)
            results.append(bench_one(base_url, label, count, size, Path(tmp), repeat))
            print(f"done: {label}", file=sys.stderr, flush=True)
    print_table(results)
    if args.smoke:
        print("smoke: start-up (~0.5 s) dominates so small a tree; compare ratios on the full run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
