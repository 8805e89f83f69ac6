"""Run every benchmark, print its tables, and regenerate docs/BENCHMARKS.md from the figures.

``--smoke`` runs each benchmark at a tiny size (seconds) so CI can run it and the scripts
cannot rot; it prints the same tables but leaves the document alone unless ``--doc`` is
given.  A target that misses prints FAIL and does not change the exit status (timings are
not assertions); a benchmark that crashes does.

Usage: python bench/run_all.py [--smoke] [--doc PATH]
                            [--only flusher,status,councils,scale,mirror,migration]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    Section,
    Target,
    base_url,
    ensure_wrk,
    markdown_table,
    pg_scalar,
    print_section,
)

DOC = ROOT / "docs" / "BENCHMARKS.md"
MIGRATION = ROOT / "bench" / "bench_migration.py"
# The scale targets first after the flusher: a run cut short keeps the figures it has.
BENCHES = ("flusher", "status", "councils", "scale", "migration", "mirror")
# Sessions migrated once for flat memory (target 16.3b); smaller on a slow machine.
MIGRATION_SCALE = int(os.environ.get("BENCH_MIGRATION_SCALE", "100000"))


def machine(smoke: bool = False) -> dict[str, str]:
    """What the figures were measured on, read at run time."""
    info = {"cpus": str(os.cpu_count()), "memory": "?", "cpu": platform.processor() or "?"}
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
        with open("/proc/cpuinfo") as f:
            model = next((line for line in f if line.startswith("model name")), "")
        info["cpu"] = model.partition(":")[2].strip() or info["cpu"]
    except (OSError, StopIteration, ValueError):
        pass
    try:
        info["postgres"] = str(pg_scalar(base_url(), "SHOW server_version"))
        info["synchronous_commit"] = str(pg_scalar(base_url(), "SHOW synchronous_commit"))
    except Exception as e:  # the benches will fail loudly on their own
        info["postgres"] = f"unreachable ({type(e).__name__})"
    info["python"] = platform.python_version()
    info["kernel"] = platform.release()
    try:
        import gunicorn
        import sqlalchemy

        info["libraries"] = f"SQLAlchemy {sqlalchemy.__version__}, gunicorn {gunicorn.__version__}"
    except ImportError:
        pass
    if os.environ.get("BENCH_NOTE"):  # e.g. who else was using the machine
        info["note"] = os.environ["BENCH_NOTE"]
    info["load average at the start"] = loadavg()
    wrk = ensure_wrk(install=not smoke) and shutil.which("wrk")  # CI: no apt in smoke
    info["load generator"] = "wrk" if wrk else "Python threads + http.client (wrk not installed)"
    return info


def loadavg() -> str:
    """Other jobs share these cores; the figures are only comparable within one run."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3]) + " (1, 5, 15 min)"
    except OSError:
        return "?"


def run_migration(smoke: bool) -> Section:
    """bench_migration.py belongs to another engineer: run it as a script (its ``main``
    prints one table), keep its output verbatim and read targets 4 and 6 from the table."""
    # The full run keeps the script's own default, the best of 2 rounds per tree: with one
    # round the 2,500-session tree's ratio swung 0.49-0.63 between runs of the same code.
    cmd = [sys.executable, str(MIGRATION)] + (["--smoke"] if smoke else [])
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300 if smoke else 1800
    )
    section = Section("Migration throughput (bench/bench_migration.py, target 4)")
    section.raw = proc.stdout.strip()
    section.seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    try:
        rows = migration_rows(section.raw)
    except (ValueError, IndexError):
        rows = []
    if not smoke:
        run_migration_scale(section)
    if rows:
        worst = min(rows, key=lambda r: r[6])
        section.targets.append(
            Target(
                "4",
                "migration throughput",
                worst[6] >= 0.5,
                f"worst tree {worst[0]}: {worst[3]:,.0f} sessions/s, {worst[4]:.1f} MB/s = "
                f"{worst[6]:.2f}x the raw batched upsert (need >= 0.5x)",
            )
        )
        by_label = {r[0]: r for r in rows}
        small, big = by_label.get("2,500 x 20 KB"), by_label.get("10,000 x 20 KB")
        if small and big:
            section.targets.append(
                Target(
                    "6b",
                    "flat memory during migration",
                    big[8] <= small[8] * 1.25 + 10,
                    f"peak RSS {small[8]:.0f} MB for 2,500 sessions, {big[8]:.0f} MB for "
                    "10,000 (same document size)",
                )
            )
    return section


def run_migration_scale(section: Section) -> None:
    """Target 16.3b: ``bench_migration.py --scale``: 100,000 sessions, peak RSS beside 2,500's."""
    cmd = [sys.executable, str(MIGRATION), "--scale", str(MIGRATION_SCALE)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("SCALE "))
    f = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    section.raw += "\n\n" + "\n".join(ln for ln in proc.stdout.splitlines() if ln != line)
    section.targets.append(
        Target(
            "16.3b",
            f"migration of {int(f['sessions']):,} sessions with flat memory",
            f["peak_rss_mb"] <= f["small_peak_rss_mb"] * 1.25 + 10,
            f"{int(f['sessions']):,} x 20 KB in {f['seconds']:.0f} s ({f['rate']:,.0f}/s), peak "
            f"RSS {f['peak_rss_mb']:.0f} MB vs {f['small_peak_rss_mb']:.0f} MB for "
            f"{int(f['small_sessions']):,} sessions",
        )
    )


def migration_rows(text: str) -> list[list[Any]]:
    """The rows of bench_migration's fixed-width table (tree label, then 8 numbers)."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("tree"))
    rows: list[list[Any]] = []
    for line in lines[head + 2 :]:
        numbers = line[16:].split()
        if len(numbers) != 8:
            break
        values = [float(n.replace(",", "")) for n in numbers]
        mbytes, seconds, rate, mbps, raw, ratio, rerun, rss = values
        rows.append([line[:16].strip(), mbytes, seconds, rate, mbps, raw, ratio, rerun, rss])
    return rows


def run_one(name: str, smoke: bool) -> Section:
    if name == "flusher":
        import bench_flusher

        return bench_flusher.run(smoke)
    if name == "status":
        import bench_status

        return bench_status.run(smoke)
    if name == "councils":
        import bench_councils

        return bench_councils.run(smoke)
    if name == "scale":
        import bench_scale_data

        return bench_scale_data.run(smoke)
    if name == "mirror":
        import bench_mirror

        return bench_mirror.run(smoke)
    return run_migration(smoke)


INTRO = """\
# Benchmarks

Generated by `bench/run_all.py` on {when}; do not edit by hand: change the generator and
run `make bench` again. Every figure below comes from that one run.

## Machine

{machine}

## Commands

- `make bench` (= `.venv/bin/python bench/run_all.py`): the full run, a few minutes; rewrites
  this file.
- `make bench-smoke` (= `bench/run_all.py --smoke`): every benchmark at a tiny size, in
  seconds; CI runs it so the scripts cannot rot. It prints the same tables and leaves this
  file alone.
- One benchmark on its own: `.venv/bin/python bench/bench_flusher.py [--smoke]`,
  `bench/bench_status.py [--smoke] [--loadgen wrk|python]`,
  `bench/bench_councils.py [--smoke] [--councils N] [--latency S]`,
  `bench/bench_scale_data.py [--smoke] [--sessions N] [--budget S]`,
  `bench/bench_mirror.py [--smoke]`, `bench/bench_migration.py [--smoke] [--scale N]`.
- HTTP load comes from `wrk` (Debian package; the benchmarks install it with apt when it is
  missing and they run as root).

Each benchmark creates its own schema (`bench_<random>`) in the database named by
`BENCH_DATABASE_URL` (default `TEST_DATABASE_URL`, then
`postgresql://postgres@127.0.0.1:5432/test`) and drops it afterwards. Targets print PASS or
FAIL; a FAIL never fails the run, because timings on a shared 2-core machine are noisy.

## Targets
"""

EXPLAIN = {
    "Progress flushes": """\
**How to read it.** Item 1 drives 100 sessions at 100 progress updates/s each through a real
`ProgressFlusher` (350 ms interval) on a `PostgresStore`, for 20 s; statements are counted
with a `before_cursor_execute` listener on the store's engine. *Coalescing factor* = updates
accepted per row written; *updates per statement* = updates per batched `jsonb_to_recordset`
statement. *update_progress tight loop* is what one process can accept (the flusher thread
running meanwhile); *write-through* is the naive design, one statement and one commit per
update, in 1 and 4 threads; the ratio of the two is the target. Each commit waits for the
WAL flush (`synchronous_commit=on`), which is what caps write-through on this disk.

Item 2 flushes progress into N dirty sessions whose stored state is about 2 KB and about
300 KB of random-word JSON (TOAST compresses it only a little), in three variants side by
side (each in its own schema, rounds interleaved): the app as it ships (`create_schema` with
the default settings), the same with the other `STATE_GIN_INDEX` setting, and GIN on with
`session_state` forced back to PostgreSQL's default fillfactor 100, the layout the first runs
of this benchmark found wanting. The progress flush updates only the small `progress` column
and PostgreSQL keeps the TOASTed `state` value as it is, so time and WAL should not depend on
the document: unless the new row version does not fit on its page (*HOT %* well below 100),
in which case the update inserts into every index, and a GIN index re-reads the whole
unchanged document to do so. The *naive* column folds the same progress into the document
and writes the document back (one batched statement): its WAL grows with the document.
*write_state* is the cold path (one full-document compare-and-set, e.g. a step transition).
WAL bytes come from `pg_current_wal_lsn()` before and after; they include whatever else the
cluster wrote meanwhile, hence medians.

**GIN trade-off (target 5).** The index on `session_state.state` (`jsonb_path_ops`) must
hash every path of a document whenever a row version is not a HOT update: on every
full-document write, and on every progress flush that does not fit on its page. The app
itself runs no containment or JSON-path query on `state`, so the index only serves ad-hoc
queries. The recommendation (see *Findings*) is computed from the figures of this run.
""",
    "/status, /summary, /results": """\
**How to read it.** The real app (`create_app`, settings from the environment, bench/status_app.py)
and a *bare app* outside the project (bench/bare_app.py: Flask + SQLAlchemy Core + psycopg2,
one small JSONB row by primary key returned with `jsonify`, no hooks, no pool pre-ping) run
side by side under gunicorn with the same command line (2 sync workers), against one
schema holding a 5 KB and a 327 KB completed session. wrk drives every route in turn,
rounds rotating the order; ratios are medians of per-round ratios, so load other jobs put
on the machine between rounds cancels out. `/status` reads the metadata row and the small
hot column (`load_hot`): the 327 KB session costs what the 5 KB one does. `/summary` and
`/results` take their large values as JSON text (`StateStore.read_view`): PostgreSQL
serialises them (`(doc -> key)::text`, the document detoasted once), Python never parses
them, and each worker keeps the texts per row version (`xmin`), so a repeated read of an
unchanged session is one `/status`-sized query plus the bytes; the hot keys are read fresh
every time. Before this, `/summary` loaded the whole document into dicts and dumped it again:
0.37x of the 5 KB rate for 327 KB. Lookups by key run in autocommit (one round trip; the
bare app, like any Flask + SQLAlchemy app, pays BEGIN, the query and a ROLLBACK), and
flask-cors runs only for requests that carry an Origin header.
""",
    "councils": """\
**How to read it.** The real server (`gunicorn.conf.py`, 2 workers) with its real OpenAI
client pointed at bench/fake_llm.py, a loopback OpenAI-compatible endpoint (one asyncio
loop) that answers every call after the stated latency, streamed (server-sent events, final
usage chunk). All councils are created and given 5 members first, then every `execute` is
fired at once (8 client threads); the bench waits until no session is `executing`. The
endpoint counts LLM calls in flight (what a process-wide bound would cap). Meanwhile 8
pollers request `/status` of random sessions over keep-alive connections (their p99 is the
latency a browser polling its session sees under that load), and every second each
worker's RSS and thread count are read from /proc. *After ramp-up* is from 10 s (or a
quarter of the run) after the last execute was fired until the last run finished. Pool
exhaustion shows as a 503 (StoreUnavailable) or a QueuePool/TimeoutError line in the log.
""",
    "A million": """\
**How to read it.** See the docstring of bench/bench_scale_data.py: both schemas are filled
server-side in SQL (`generate_series`, one template document of about 20 KB with each
session's own id and question), UNLOGGED while loading (no WAL: this measures reads), then
ANALYZEd. The heavy user owns every 50th session of the large schema (so a page
10,000 deep exists) and every 10th of the small one. Listing is keyset-paged
(`GET /api/sessions?limit=50&cursor=...`, order created_at desc, id desc, served by the
(user_id, created_at) index); the offset row is the contrast that keyset pagination
avoids. The deep page is compared with the small schema's own cursor page half-way
down its heavy user's 100 sessions (the same request and query; a page 10,000 deep cannot
exist there). `/status` and `/summary` pick one of 1,000 random sessions per request, as its
owner (the view cache holds all 1,000 in both schemas after the warm-up round).
""",
    "State-file mirror": """\
**How to read it.** While on PostgreSQL, `StateFileMirror` copies every step write to the
session's `state.json` so that the runbook's rollback (unset `DATABASE_URL`, restart) loses
nothing. Two stores as `build_store` composes them, `STATE_FILE_MIRROR` on and off, in one
schema, each with its own sessions of about 2 KB and 300 KB; the variants alternate round by
round. *write_state* is timed in the calling thread (what a request or a run waits for): with
the mirror it also serialises the document and queues it. *drain* is what `flush()` then
waits for the mirror's thread to write the queued files (atomic: temp file, rename, fsynced
in groups every 5 s; coalesced per session), per write; no request waits for it. The
mirror's thread runs at the lowest CPU priority and writes with plain `os` calls: its
Python holds the GIL the caller waits for (1.13-1.19x for 2 KB before both). A *progress
flush* passes through the mirror untouched, so its ratio is timing noise around 1.
""",
    "Migration": """\
**How to read it.** Output of `bench/bench_migration.py` (owned by the migration work),
included verbatim.
""",
}


CLOSING = {
    "1": "progress ingest >= 100x the write-through ceiling (kept)",
    "2": "a 300 KB flush <= 1.5x a 2 KB one (kept)",
    "3": "/status of 327 KB within 1.2x of 5 KB (kept)",
    "16.1": "/summary and /results of 327 KB >= 0.5x the 5 KB rate",
    "16.2": "500 councils of 5 members at once on one host",
    "16.3": "1,000,000 stored sessions: listing, deep page, /status, /summary within 1.2x",
    "16.3b": "migration of 100,000 sessions with flat RSS",
    "16.4": "/status >= 0.9x the bare stack",
}


def target_order(t: Target) -> tuple[int, str]:
    """1, 2, ... 6b, then 16.1, 16.2 ... (numbers, not strings)."""
    head, _, tail = t.number.partition(".")
    digits = "".join(c for c in head if c.isdigit())
    return (int(digits) if digits else 999, head + tail)


def closing_note(sections: list[Section]) -> str:
    """Issue 16's targets, each with its figure from this run (or why it has none)."""
    found = {t.number: t for s in sections for t in s.targets}
    lines = ["## Closing note: the scale targets (issue 16)\n"]
    for number, what in CLOSING.items():
        t = found.get(number)
        if t is None:
            lines.append(f"- **{number}** {what}: not measured in this run.")
        else:
            verdict = "PASS" if t.passed else "FAIL"
            lines.append(f"- **{number}** {what}: **{verdict}**, {t.detail}.")
    return "\n".join(lines) + "\n"


def render(sections: list[Section], info: dict[str, str], total_s: float, smoke: bool) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mach = "\n".join(f"- {k}: {v}" for k, v in info.items())
    out = [INTRO.format(when=when, machine=mach)]
    out.append("| target | result | figures |\n|---|---|---|")
    for t in sorted((t for s in sections for t in s.targets), key=target_order):
        detail = t.detail.replace("|", "/")
        out.append(f"| {t.number}. {t.name} | {'PASS' if t.passed else 'FAIL'} | {detail} |")
    out.append(f"\nWhole run: {total_s:.0f} s{' (smoke mode)' if smoke else ''}.\n")
    out.append(closing_note(sections))
    findings = [f for s in sections for f in s.findings]
    if findings:
        out.append("## Findings and recommendations\n")
        out.extend(f"- {f}\n" for f in findings)
    for s in sections:
        out.append(f"## {s.title}\n")
        for key, text in EXPLAIN.items():
            if key in s.title:
                out.append(text)
        for table in s.tables:
            out.append(f"### {table.title}\n")
            out.append(markdown_table(table))
            if table.note:
                out.append(f"\n{table.note}")
            out.append("")
        for note in s.notes:
            out.append(f"**Note.** {note}\n")
        if s.raw:
            out.append("```text\n" + s.raw + "\n```\n")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds in all")
    parser.add_argument("--doc", type=Path, default=None, help=f"default (full run): {DOC}")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    args = parser.parse_args(argv)
    wanted = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(wanted) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    info = machine(args.smoke)
    print("Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    sections: list[Section] = []
    crashed = []
    for name in wanted:
        if name == "migration" and not MIGRATION.exists():
            print("\n(bench/bench_migration.py not present yet: target 4 skipped)")
            continue
        try:
            section = run_one(name, args.smoke)
        except Exception:
            crashed.append(name)
            section = Section(f"{name}: crashed")
            section.raw = traceback.format_exc()
            section.targets.append(Target("-", f"{name} benchmark", False, "crashed, see output"))
        sections.append(section)
        print_section(section)
        if doc_path(args, wanted) is not None:  # a run cut short still leaves its figures
            write_doc(doc_path(args, wanted), sections, info, time.perf_counter() - started, args)
    total = time.perf_counter() - started
    info["load average at the end"] = loadavg()
    print("\nSummary")
    for t in sorted((t for s in sections for t in s.targets), key=target_order):
        print(f"  [{'PASS' if t.passed else 'FAIL'}] {t.number}. {t.name}: {t.detail}")
    print(f"Total: {total:.1f} s{' (smoke)' if args.smoke else ''}")
    doc = doc_path(args, wanted)
    if doc is not None:
        write_doc(doc, sections, info, total, args)
        print(f"Wrote {doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc}")
    else:
        render(sections, info, total, args.smoke)  # the generator runs in smoke mode too
    return 1 if crashed else 0


def doc_path(args: argparse.Namespace, wanted: list[str]) -> Path | None:
    if args.doc is not None:
        return Path(args.doc)
    if not args.smoke and set(wanted) == set(BENCHES):
        return DOC  # only a full run of everything replaces the committed figures
    return None


def write_doc(
    doc: Path, sections: list[Section], info: dict[str, str], total: float, args: Any
) -> None:
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(sections, info, total, args.smoke), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
