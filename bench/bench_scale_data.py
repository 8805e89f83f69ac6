"""Target 16.3: a million stored sessions read as fast as a thousand.

Two schemas are filled server-side in SQL (``generate_series``; nothing travels from
Python but one ~20 KB template document): a large one (1,000,000 sessions by default)
and a small one (1,000 sessions), both spread over 1,000 users the same way, except that
one user ("heavy@bench") owns every 50th session of the large schema (20,000 of them,
so a page 10,000 sessions deep exists) and every 10th of the small one (100).  Each
document is the template with its own id and question (about 20 KB of JSON; random
words, so TOAST compresses it little).  The tables are UNLOGGED while loading (no WAL:
this measures reads) and ANALYZEd.

The real app (bench/status_app.py) then serves each schema under gunicorn (2 sync
workers) and wrk drives, in interleaved rounds: the heavy user's first page, a page
10,000 sessions deep by keyset cursor (and by offset, for contrast), and ``/status`` and
``/summary`` of sessions picked at random (1,000 per schema, each request a random one
of them, as its owner).  Target: each within 1.2x of the small schema.  The deep page is
compared with the small schema's own cursor page, half-way down its heavy user's 100
sessions (a page 10,000 deep cannot exist there): the same request and query, cursor
decoding and bounded index range included, so only the table's size differs.

``--sessions`` sets the large size; ``--budget`` (seconds) stops the load early, and the
figures then say which size was measured.

Usage: python bench/bench_scale_data.py [--smoke] [--sessions N] [--budget S]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from bench_status import HOST, Server, _ms
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

from council_app.api.sessions import encode_cursor
from council_app.store.base import ListCursor
from council_app.store.postgres import PostgresStore

USERS = 1_000
HEAVY = "heavy@bench"
PAGE = 50
DEEP = 10_000
SAMPLE = 1_000
BATCH = 20_000
LOADERS = 2  # connections loading at once (the machine has 2 cores)
CONNECTIONS = 4

# One statement per batch: the metadata rows, then each one's document from the template.
_INSERT_BATCH = """
WITH m AS (
    INSERT INTO sessions (id, user_id, question, status, current_step, cost, total_tokens,
                          created_at, updated_at)
    SELECT 'session_' || to_char(t.ts, 'YYYYMMDD_HH24MISS') || '_' || lpad(to_hex(g), 12, '0'),
           CASE WHEN g % :heavy_every = 0 THEN :heavy ELSE 'user' || (g % :users) || '@bench'
           END,
           'Question ' || g || ': should we move the billing service to events?',
           'verdict_complete', 'synthesize', 0.05, 12345, t.ts, t.ts
    FROM generate_series(:lo, :hi) AS g,
         LATERAL (SELECT timestamptz '2023-01-01 00:00:00+00' + g * interval '37 second'
                  AS ts) AS t
    RETURNING id, user_id, question, updated_at
)
INSERT INTO session_state (session_id, state, progress, revision, updated_at)
SELECT m.id,
       jsonb_set(jsonb_set(jsonb_set(CAST(:template AS jsonb), '{session_id}', to_jsonb(m.id)),
                 '{question}', to_jsonb(m.question)), '{user_id}', to_jsonb(m.user_id)),
       CAST(:hot AS jsonb), 1, m.updated_at
FROM m
"""


def fill(url: str, total: int, heavy_every: int, budget_s: float) -> tuple[int, float]:
    """Create the app's schema and load ``total`` sessions in batches; stop at the budget.
    Returns (sessions loaded, seconds)."""
    store = PostgresStore(bench_settings(url))
    try:
        store.create_schema()
    finally:
        store.close()
    maker = TextMaker(11)
    template = make_state("session_template", 20_000, maker, completed=True)
    hot = {k: template[k] for k in ("status", "current_step", "progress", "tokens")}
    template_text, hot_text = orjson.dumps(template).decode(), orjson.dumps(hot).decode()
    engine = sa.create_engine(url)
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE session_state SET UNLOGGED"))
            conn.execute(sa.text("ALTER TABLE sessions SET UNLOGGED"))
        # LOADERS connections take the next batch in turn; none starts past the budget, so
        # what was loaded is always sessions 1..n.
        next_lo = [1]
        lock = threading.Lock()

        def loader() -> int:
            done = 0
            while True:
                with lock:
                    lo = next_lo[0]
                    if lo > total or time.perf_counter() - started > budget_s:
                        return done
                    hi = min(total, lo + BATCH - 1)
                    next_lo[0] = hi + 1
                with engine.begin() as conn:
                    conn.execute(
                        sa.text(_INSERT_BATCH),
                        {
                            "lo": lo,
                            "hi": hi,
                            "heavy_every": heavy_every,
                            "heavy": HEAVY,
                            "users": USERS,
                            "template": template_text,
                            "hot": hot_text,
                        },
                    )
                done += hi - lo + 1

        with ThreadPoolExecutor(LOADERS) as pool:
            loaded = sum(pool.map(lambda _: loader(), range(LOADERS)))
        if loaded < total:
            print(f"load budget reached at {loaded:,} sessions", flush=True)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # Statistics for the planner; no VACUUM (minutes over tens of GB, and the reads
            # measured here do not depend on it).
            conn.execute(sa.text("ANALYZE sessions"))
            conn.execute(sa.text("ANALYZE session_state"))
    finally:
        engine.dispose()
    return loaded, time.perf_counter() - started


def probes(url: str, seed: float, depth: int) -> dict[str, Any]:
    """Ids to read: the heavy user's cursor ``depth`` sessions deep, and a random sample."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT setseed(:s)"), {"s": seed})
            deep = conn.execute(
                sa.text(
                    "SELECT created_at, id FROM sessions WHERE user_id = :u "
                    "AND deleted_at IS NULL ORDER BY created_at DESC, id DESC "
                    "OFFSET :n LIMIT 1"
                ),
                {"u": HEAVY, "n": depth - 1},
            ).first()
            sample = conn.execute(
                sa.text("SELECT id, user_id FROM sessions ORDER BY random() LIMIT :k"),
                {"k": SAMPLE},
            ).all()
            sizes = conn.execute(
                sa.text(
                    "SELECT pg_total_relation_size('session_state'), "
                    "avg(octet_length(state::text)) FROM (SELECT state FROM session_state "
                    "LIMIT 100) s"
                )
            ).first()
    finally:
        engine.dispose()
    cursor = encode_cursor(ListCursor(deep.created_at, deep.id)) if deep else None
    return {
        "cursor": cursor,
        "sample": [(r.id, r.user_id) for r in sample],
        "bytes": int(sizes[0]),
        "doc_bytes": float(sizes[1] or 0),
    }


WRK_LUA = """
local items = {%s}
local n = #items
math.randomseed(%d)
request = function()
  local it = items[math.random(n)]
  return wrk.format("GET", it[1], {["X-User-Id"] = it[2]})
end
"""


def drive_python(
    port: int, items: list[tuple[str, str]], seconds: float, seed: int
) -> dict[str, float]:
    """Without wrk: CONNECTIONS keep-alive threads, a random (path, user) per request."""
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    errors = [0] * CONNECTIONS

    def work(i: int) -> None:
        rng = random.Random(seed * 100 + i)
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        while time.perf_counter() < deadline:
            path, user = rng.choice(items)
            began = time.perf_counter()
            try:
                conn.request("GET", path, headers={"X-User-Id": user})
                response = conn.getresponse()
                response.read()
                errors[i] += response.status != 200
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
            latencies[i].append((time.perf_counter() - began) * 1000)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    merged = sorted(x for lat in latencies for x in lat)
    return {
        "rps": len(merged) / (time.perf_counter() - started),
        "p99_ms": merged[min(len(merged) - 1, int(len(merged) * 0.99))] if merged else 0.0,
        "errors": float(sum(errors)),
    }


def drive(port: int, items: list[tuple[str, str]], seconds: float, seed: int) -> dict[str, float]:
    """wrk against a random choice of (path, user) per request (Python threads without wrk)."""
    if not shutil.which("wrk"):
        return drive_python(port, items, seconds, seed)
    lua = ",".join(f'{{"{p}","{u}"}}' for p, u in items)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % (lua, seed))
        script = f.name
    try:
        out = subprocess.run(
            [
                "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
                "-s", script, f"http://{HOST}:{port}/",
            ],
            capture_output=True, text=True, timeout=seconds + 60,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def run(smoke: bool = False, sessions: int | None = None, budget: float | None = None) -> Section:
    from common import ensure_wrk

    ensure_wrk(install=not smoke)
    started = time.perf_counter()
    total = sessions or (2_000 if smoke else 1_000_000)
    budget = budget or (120.0 if smoke else float(os.environ.get("BENCH_SCALE_BUDGET_S", "900")))
    seconds = 1.0 if smoke else 2.0
    rounds = 1 if smoke else 7
    section = Section("A million stored sessions (target 16.3)")
    tmp = Path(tempfile.gettempdir())
    with bench_schema("scale_big") as big_url, bench_schema("scale_small") as small_url:
        small_n, _ = fill(small_url, 500 if smoke else 1_000, 10, budget)
        big_n, big_s = fill(big_url, total, 50, budget)
        # The small schema's heavy user has small_n / 10 sessions: its cursor page is taken
        # half-way down them, so both deep pages run the same query (cursor decoding and the
        # bounded index range included) and only the table's size differs.
        depth = {"big": DEEP, "small": max(1, small_n // 10 // 2)}
        urls = {"big": big_url, "small": small_url}
        probe = {name: probes(url, 0.42, depth[name]) for name, url in urls.items()}
        servers = {
            "big": Server(big_url, tmp / f"council-scale-big-{os.getpid()}.log"),
            "small": Server(small_url, tmp / f"council-scale-small-{os.getpid()}.log"),
        }
        routes: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        try:
            for name, server in servers.items():
                server.wait_ready("/api/health")
                p = probe[name]
                routes[f"{name}: first page"] = (name, [(f"/api/sessions?limit={PAGE}", HEAVY)])
                if p["cursor"]:
                    routes[f"{name}: page {depth[name]:,} deep (cursor)"] = (
                        name,
                        [(f"/api/sessions?limit={PAGE}&cursor={p['cursor']}", HEAVY)],
                    )
                if p["cursor"] and name == "big":
                    routes[f"{name}: page {DEEP:,} deep (offset)"] = (
                        name,
                        [(f"/api/sessions?limit={PAGE}&offset={DEEP}", HEAVY)],
                    )
                for endpoint in ("status", "summary"):
                    routes[f"{name}: /{endpoint} of a random session"] = (
                        name,
                        [(f"/api/sessions/{sid}/{endpoint}", user) for sid, user in p["sample"]],
                    )
            results: dict[str, list[dict[str, float]]] = {r: [] for r in routes}
            names = list(routes)
            for name in names if not smoke else []:  # warm pools, caches, the view cache
                server_name, items = routes[name]
                drive(servers[server_name].port, items, 2.0, 1)
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    server_name, items = routes[name]
                    results[name].append(drive(servers[server_name].port, items, seconds, r + 7))
        finally:
            for server in servers.values():
                server.stop()
        for log in tmp.glob(f"council-scale-*-{os.getpid()}.log"):
            log.unlink(missing_ok=True)

    def ratio(a: str, b: str) -> float:
        return median([x["rps"] / y["rps"] for x, y in zip(results[a], results[b], strict=True)])

    compare = {
        "first page": ("big: first page", "small: first page"),
        f"page {DEEP:,} deep (cursor)": (
            f"big: page {DEEP:,} deep (cursor)",
            f"small: page {depth['small']:,} deep (cursor)",
        ),
        "/status of a random session": (
            "big: /status of a random session",
            "small: /status of a random session",
        ),
        "/summary of a random session": (
            "big: /summary of a random session",
            "small: /summary of a random session",
        ),
    }
    rows = []
    for name in names:
        runs = results[name]
        rows.append(
            [
                name,
                median([r["rps"] for r in runs]),
                median([r["p99_ms"] for r in runs]),
                int(sum(r["errors"] for r in runs)),
            ]
        )
    section.tables.append(
        Table(
            f"Requests/s, large schema ({big_n:,} sessions, {probe['big']['bytes'] / 1e9:.1f} GB "
            f"session_state, documents ~{probe['big']['doc_bytes'] / 1000:.0f} KB) and small "
            f"schema ({small_n:,}); gunicorn 2 sync workers each, wrk {CONNECTIONS} connections, "
            f"{rounds} rounds of {seconds:.0f} s",
            ["route", "req/s (median)", "p99 ms", "errors"],
            rows,
        )
    )
    ratios = []
    worst = 10.0
    for label, (a, b) in compare.items():
        if a in results and b in results:
            value = ratio(a, b)
            worst = min(worst, value)
            ratios.append([label, value])
    if f"big: page {DEEP:,} deep (offset)" in results:
        ratios.append(
            [
                f"contrast: page {DEEP:,} deep by offset",
                ratio(f"big: page {DEEP:,} deep (offset)", "small: first page"),
            ]
        )
    section.tables.append(
        Table(
            f"Large over small (median of per-round ratios; >= {1 / 1.2:.2f} is within 1.2x)",
            ["read", "large / small req/s"],
            ratios,
            f"Load: {big_n:,} sessions in {big_s:.0f} s ({big_n / max(big_s, 1e-9):,.0f}/s), "
            "server-side in SQL.",
        )
    )
    errors = sum(int(r[3]) for r in rows)
    section.targets.append(
        Target(
            "16.3",
            f"{big_n:,} stored sessions",
            worst >= 1 / 1.2 and errors == 0 and big_n >= total,
            f"{big_n:,} sessions (asked {total:,}): worst large/small ratio {worst:.2f} "
            f"(need >= {1 / 1.2:.2f}); " + "; ".join(f"{r[0]} {r[1]:.2f}" for r in ratios),
        )
    )
    section.seconds = time.perf_counter() - started
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, help="seconds for the load")
    parser.add_argument("--deep", type=int, default=DEEP, help="depth of the deep page")
    args = parser.parse_args(argv)
    globals()["DEEP"] = args.deep
    print_section(run(args.smoke, args.sessions, args.budget))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
