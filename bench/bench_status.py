"""/status, /summary and /results under gunicorn, against the bare stack.

Target 3: ``/status`` costs the same for a 327 KB and a 5 KB session.  Target 16.1:
``/summary`` and ``/results`` of the 327 KB session at >= 0.5x the rate of the 5 KB one
(the large values travel as JSON text from PostgreSQL, see ``StateStore.read_view``).
Target 16.4: ``/status`` at >= 0.9x the rate of the bare stack (bench/bare_app.py: Flask +
SQLAlchemy Core + psycopg2 reading one small JSONB row by primary key, outside the
project), both under gunicorn with 2 sync workers and the same wrk load.

The app (bench/status_app.py) and the bare app run side by side on free loopback ports,
against a schema of their own; routes are measured in interleaved rounds, rotating, so
drift hits them alike, and ratios are medians of per-round ratios.

Usage: python bench/bench_status.py [--smoke] [--loadgen wrk|python]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    ROOT,
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

from council_app.session_ids import new_session_id
from council_app.store.base import SessionRow
from council_app.store.postgres import PostgresStore
from council_app.store.schema import utcnow

HOST = "127.0.0.1"
WORKERS = 2
CONNECTIONS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


SIZES = (("small", 5_000), ("big", 327_000))


def seed(url: str) -> dict[str, tuple[str, int]]:
    """One 5 KB and one 327 KB completed session, written straight through the store."""
    import orjson

    store = PostgresStore(bench_settings(url))
    try:
        store.create_schema()
        out = {}
        maker = TextMaker(3)
        for label, size in SIZES:
            sid = new_session_id()
            state = make_state(sid, size, maker, completed=True)
            now = utcnow()
            row = SessionRow(
                sid, state["user_id"], "q", state["status"], "execute", 0.0, 0, now, now
            )
            store.create_session(row, state, time.time_ns() // 1000)
            out[label] = (sid, len(orjson.dumps(state)))
        return out
    finally:
        store.close()


def seed_bare(url: str, body: bytes) -> str:
    """The bare app's one row: the small session's /status body as JSONB."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE bare_rows (id varchar(128) PRIMARY KEY, doc jsonb)"))
            conn.execute(
                sa.text("INSERT INTO bare_rows VALUES ('row-1', CAST(:doc AS jsonb))"),
                {"doc": body.decode()},
            )
    finally:
        engine.dispose()
    return "row-1"


def fetch(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return body
    finally:
        conn.close()


class Server:
    """gunicorn (2 sync workers) serving ``module:app`` from bench/, stopped by its own pid
    however the bench ends.  Both apps get the same command line."""

    def __init__(self, url: str, log_path: Path, module: str = "status_app") -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": url,
                "BARE_DATABASE_URL": url,
                "SESSIONS_DIR": str(Path(tempfile.gettempdir()) / "council-bench-sessions"),
                "AUTH_MODE": "dev",
                "LOG_FORMAT": "text",
                "DB_POOL_SIZE": "2",
            }
        )
        cmd = [
            sys.executable, "-m", "gunicorn",
            "-w", str(WORKERS), "-k", "sync", "--threads", "1",
            "-b", f"{HOST}:{self.port}",
            "--pythonpath", f"{ROOT},{ROOT / 'bench'}",
            "--log-level", "warning",
            f"{module}:app",
        ]  # fmt: skip
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        # cwd=bench/: gunicorn must not pick up the repo's gunicorn.conf.py (gthread, access log)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT / "bench", env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


# -- load generators ---------------------------------------------------------------------------

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * _UNIT[m.group(2)] if m else float("nan")


def run_wrk(port: int, path: str, seconds: float) -> dict[str, float]:
    cmd = [
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
        f"http://{HOST}:{port}{path}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
    }


def run_python(port: int, path: str, seconds: float) -> dict[str, float]:
    """Bounded: CONNECTIONS threads, keep-alive where the server allows, fixed duration."""
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    errors = [0] * CONNECTIONS

    def work(i: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        while time.perf_counter() < deadline and len(latencies[i]) < 1_000_000:
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[i] += 1
                if response.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=10)
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
                continue
            latencies[i].append((time.perf_counter() - started) * 1000)
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    elapsed = time.perf_counter() - start
    merged = sorted(x for lat in latencies for x in lat)
    n = len(merged)
    return {
        "rps": n / elapsed,
        "p50_ms": merged[n // 2] if n else float("nan"),
        "p99_ms": merged[min(n - 1, int(n * 0.99))] if n else float("nan"),
        "errors": float(sum(errors)),
        "requests": float(n),
    }


def run(smoke: bool = False, loadgen: str | None = None) -> Section:
    started = time.perf_counter()
    section = Section("/status, /summary, /results under gunicorn, against the bare stack")
    loadgen = loadgen or ("wrk" if shutil.which("wrk") else "python")
    drive = run_wrk if loadgen == "wrk" else run_python
    seconds = 1.0 if smoke else 2.0
    rounds = 1 if smoke else 11
    tmp = Path(tempfile.gettempdir())
    with bench_schema() as url:
        seeded = seed(url)
        kb = {label: f"{seeded[label][1] / 1000:.0f} KB" for label, _ in SIZES}
        app = Server(url, tmp / f"council-bench-gunicorn-{os.getpid()}.log")
        bare: Server | None = None
        routes: list[tuple[str, Server, str]] = []
        results: dict[str, list[dict[str, float]]] = {}
        try:
            app.wait_ready(f"/api/sessions/{seeded['small'][0]}/status")
            status_body = fetch(app.port, f"/api/sessions/{seeded['small'][0]}/status")
            bare_id = seed_bare(url, status_body)
            bare = Server(url, tmp / f"council-bench-bare-{os.getpid()}.log", "bare_app")
            bare.wait_ready(f"/bare/{bare_id}")
            routes.append(("bare app: 1 small JSONB row by PK", bare, f"/bare/{bare_id}"))
            for endpoint in ("status", "summary", "results"):
                for label, _ in SIZES:
                    path = f"/api/sessions/{seeded[label][0]}/{endpoint}"
                    routes.append((f"/{endpoint}, {kb[label]} session", app, path))
            results = {name: [] for name, _, _ in routes}
            for _, server, path in routes if not smoke else []:  # warm pools and caches
                drive(server.port, path, 1.0)
            # Each round starts with a different unit.  The bare app and /status of the 5 KB
            # session (target 16.4's pair) form one unit, run back to back in alternating
            # order: their per-round ratio compares runs seconds apart, not a dozen.
            pair, rest = routes[:2], routes[2:]
            for r in range(rounds):
                units = [pair if r % 2 == 0 else pair[::-1]] + [[route] for route in rest]
                k = r % len(units)
                for unit in units[k:] + units[:k]:
                    for name, server, path in unit:
                        results[name].append(drive(server.port, path, seconds))
        finally:
            app.stop()
            if bare is not None:
                bare.stop()
        log_tail = ""
        for log in tmp.glob(f"council-bench-*-{os.getpid()}.log"):
            log_tail += log.read_text(errors="replace")[-2000:]
            log.unlink(missing_ok=True)

    names = [name for name, _, _ in routes]
    bare_runs = results[names[0]]

    def per_round(a: str, b: list[dict[str, float]]) -> float:
        # Other jobs come and go on a shared machine: compare routes within each round (they
        # ran back to back) and take the median of those ratios, not a ratio of medians.
        return median([x["rps"] / y["rps"] for x, y in zip(results[a], b, strict=True)])

    vs_bare = {name: per_round(name, bare_runs) for name in names}
    size_ratio = {
        endpoint: per_round(
            f"/{endpoint}, {kb['big']} session", results[f"/{endpoint}, {kb['small']} session"]
        )
        for endpoint in ("status", "summary", "results")
    }
    rows: list[list[Any]] = []
    errors = 0
    for name in names:
        runs = results[name]
        agg = {k: median([r[k] for r in runs]) for k in runs[0]}
        failed = int(sum(r["errors"] for r in runs))
        errors += failed
        each = " / ".join(f"{r['rps']:.0f}" for r in runs)
        rows.append([name, agg["rps"], vs_bare[name], agg["p50_ms"], agg["p99_ms"], failed, each])
    section.tables.append(
        Table(
            f"Requests/s under gunicorn ({WORKERS} sync workers each, {loadgen}, {CONNECTIONS} "
            f"connections, {rounds} rounds of {seconds:.0f} s per route)",
            [
                "route",
                "req/s (median)",
                "vs bare app (median of rounds)",
                "p50 ms",
                "p99 ms",
                "errors",
                "req/s in each round",
            ],
            rows,
            "The routes run back to back within a round, in a rotating order; ratios are taken "
            "within each round and their median reported, so load that other jobs put on the "
            "machine between rounds cancels out.  The bare app and /status of the small "
            "session always run next to each other (alternating which goes first).",
        )
    )
    if errors:
        section.notes.append(f"{errors} non-200 answers; gunicorn log tail:\n{log_tail}")
    status_vs_bare = min(
        vs_bare[f"/status, {kb['small']} session"], vs_bare[f"/status, {kb['big']} session"]
    )
    section.targets.append(
        Target(
            "3",
            "size-independent /status",
            size_ratio["status"] >= 1 / 1.2 and errors == 0,
            f"{kb['big']} / {kb['small']} = {size_ratio['status']:.2f} (need >= {1 / 1.2:.2f}); "
            f"errors {errors} (median of per-round ratios over {rounds} rounds)",
        )
    )
    section.targets.append(
        Target(
            "16.1",
            "big /summary and /results without the Python round trip",
            min(size_ratio["summary"], size_ratio["results"]) >= 0.5 and errors == 0,
            f"{kb['big']} / {kb['small']}: /summary {size_ratio['summary']:.2f}, /results "
            f"{size_ratio['results']:.2f} (need >= 0.50; 0.37 before the pass-through)",
        )
    )
    section.targets.append(
        Target(
            "16.4",
            "/status at the bare stack's speed",
            status_vs_bare >= 0.9 and errors == 0,
            f"/status / bare app = {status_vs_bare:.2f} (need >= 0.90; 0.70 in the issue); "
            f"bare app {median([r['rps'] for r in bare_runs]):,.0f} req/s",
        )
    )
    section.seconds = time.perf_counter() - started
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one short round per route")
    parser.add_argument("--loadgen", choices=("wrk", "python"), default=None)
    args = parser.parse_args(argv)
    print_section(run(args.smoke, args.loadgen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
