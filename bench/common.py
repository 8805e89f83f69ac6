"""Shared plumbing for the benchmarks: a throw-away schema, realistic states, counters, tables.

Every benchmark runs against a schema of its own (``bench_<hex>``) in the database named by
``BENCH_DATABASE_URL`` (default: the test database) and drops it afterwards, so benchmarks
can run next to the test suite and next to each other.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the scripts run as `python bench/x.py`
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy import event  # noqa: E402

from council_app.settings import Settings, normalize_database_url  # noqa: E402
from council_app.store.scratch import scratch_schema  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def base_url() -> str:
    """The admin URL (psycopg2, never the SQLAlchemy 2.1 default of psycopg3)."""
    raw = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL
    return normalize_database_url(raw)[0]


def bench_schema(prefix: str = "bench") -> AbstractContextManager[str]:
    """A URL whose search_path is a fresh schema, dropped (with everything in it) on exit."""
    return scratch_schema(base_url(), prefix)


def bench_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "sessions_dir": Path(tempfile.gettempdir()) / "council-bench-sessions",
        "db_pool_size": 8,
        "db_max_overflow": 8,
    }
    values.update(overrides)
    return Settings(**values)


def ensure_wrk(install: bool = True) -> bool:
    """wrk (Debian package) for the HTTP benchmarks: installed with apt when missing and
    allowed (root, ``install``); False when it is still missing (callers fall back to
    Python threads and say so)."""
    import shutil
    import subprocess

    if shutil.which("wrk"):
        return True
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"]):
            subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=180)
            if cmd[1] == "update":
                subprocess.run(
                    ["apt-get", "install", "-y", "-qq", "wrk"],
                    env=env, capture_output=True, check=False, timeout=180,
                )  # fmt: skip
            if shutil.which("wrk"):
                break
    return shutil.which("wrk") is not None


def pg_scalar(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


# -- statement counting -------------------------------------------------------------------


class StatementCounter:
    """Counts statements sent through an engine (pg_stat_statements is not preloaded here)."""

    def __init__(self, engine: sa.Engine, marker: str = "jsonb_to_recordset") -> None:
        self.engine = engine
        self.marker = marker
        self.total = 0
        self.marked = 0
        event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        self.total += 1
        if self.marker in statement:
            self.marked += 1

    def reset(self) -> None:
        self.total = 0
        self.marked = 0

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)


# -- memory ---------------------------------------------------------------------------------


def proc_status_kb(key: str) -> int:
    """A ``VmRSS``/``VmHWM`` figure of this process in KiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a peak belongs to one phase."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# -- realistic documents ----------------------------------------------------------------------

AGENTS = ("Strategist", "Skeptic", "Economist", "Engineer", "Ethicist")


def _vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    letters = string.ascii_lowercase
    return ["".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(size)]


class TextMaker:
    """Random-word prose: TOAST compresses it only a little, like real model output."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = _vocabulary(self.rng)

    def text(self, nbytes: int) -> str:
        count = max(1, nbytes // 7)
        out = " ".join(self.rng.choices(self.words, k=count))
        return out[:nbytes]


def make_state(
    session_id: str, size: int, maker: TextMaker, completed: bool | None = None
) -> dict[str, Any]:
    """A session of about ``size`` bytes of JSON.

    By default small sizes are a session that has just started (question and council) and
    large ones a completed session whose proposals, critiques and verdict make up the
    bulk; ``completed`` forces either shape.  Results follow LEGACY_STATE.md.
    """
    if not (size >= 10_000 if completed is None else completed):
        return _fresh_state(session_id, size, maker)
    body = max(500, size - 3300)  # what the fixed keys below take
    per_agent = body * 50 // 100 // len(AGENTS)
    per_review = body * 30 // 100 // len(AGENTS)
    verdict = body - per_agent * len(AGENTS) - per_review * len(AGENTS)
    return {
        "session_id": session_id,
        "user_id": "dev-user@localhost",
        "created_at": "2026-11-24T08:00:00+00:00",
        "updated_at": "2026-11-24T08:05:00+00:00",
        "question": "Should we migrate the billing service to an event-driven architecture?",
        "current_step": "synthesize",
        "status": "completed",
        "context_files": [],
        "council_config": {
            "agents": [
                {"name": a, "persona": f"The {a.lower()} of the council", "model": "gpt-5.1"}
                for a in AGENTS
            ]
        },
        "execution_results": {
            "council_name": "Bench council",
            "original_question": "Should we migrate the billing service?",
            "execution_results": [
                {
                    "agent_name": a,
                    "agent_persona": f"The {a.lower()} of the council",
                    "proposal_id": i + 1,
                    "response": maker.text(per_agent),
                    "tldr": "In short: yes, carefully.",
                    "status": "success",
                    "tools_used": [],
                }
                for i, a in enumerate(AGENTS)
            ],
        },
        "peer_reviews": [
            {
                "reviewer": a,
                "critiques": maker.text(per_review),
                "scores": {str(j + 1): (i + j) % 10 for j in range(len(AGENTS))},
            }
            for i, a in enumerate(AGENTS)
        ],
        "aggregated_scores": {str(j + 1): 5.5 + j / 10 for j in range(len(AGENTS))},
        "chairman_verdict": maker.text(verdict),
        "execution_status": {a: "Done" for a in AGENTS},
        "review_status": {a: "Done" for a in AGENTS},
        "progress": {"execution": 100, "review": 100},
        "tokens": token_totals(12_345),
    }


def _fresh_state(session_id: str, size: int, maker: TextMaker) -> dict[str, Any]:
    state: dict[str, Any] = {
        "session_id": session_id,
        "user_id": "dev-user@localhost",
        "created_at": "2026-11-24T08:00:00+00:00",
        "updated_at": "2026-11-24T08:00:05+00:00",
        "question": "",
        "current_step": "execute",
        "status": "executing",
        "context_files": [],
        "council_config": {"agents": [{"name": a, "persona": f"The {a.lower()}"} for a in AGENTS]},
        "execution_status": {a: "Thinking..." for a in AGENTS},
        "progress": {"execution": 0},
        "tokens": token_totals(0),
        # A live run's lease, so that reads do not declare the run dead and rewrite the state.
        "run": {
            "id": f"run-{session_id}",
            "kind": "execute",
            "owner": "bench:0",
            "lease_until": time.time() + 86_400,
            "cancel": False,
        },
    }
    fixed = len(json.dumps(state))
    state["question"] = maker.text(max(20, size - fixed))
    return state


def token_totals(n: int) -> dict[str, Any]:
    return {
        "input_tokens": n * 3,
        "output_tokens": n,
        "total_tokens": n * 4,
        "total_cost_usd": round(n * 0.00001, 6),
        "by_step": {"execute": {"total_tokens": n * 3}, "review": {"total_tokens": n}},
        "by_agent": {a: {"total_tokens": n} for a in AGENTS},
    }


# -- results and tables -----------------------------------------------------------------------


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass
class Target:
    number: str
    name: str
    passed: bool
    detail: str


@dataclass
class Section:
    """What one benchmark hands to run_all: tables for the doc and a verdict per target."""

    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # conclusions for the top of the doc
    raw: str = ""  # verbatim output of a benchmark run as a subprocess
    seconds: float = 0.0


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(table.headers) + " |",
        "|" + "|".join("---" for _ in table.headers) + "|",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def text_table(table: Table) -> str:
    cells = [table.headers] + [[fmt(v) for v in row] for row in table.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(table.headers))]
    out = [table.title, "-" * len(table.title)]
    for n, row in enumerate(cells):
        padded = [c.rjust(w) if n else c.ljust(w) for c, w in zip(row, widths, strict=True)]
        out.append("  ".join(padded))
    if table.note:
        out.append(table.note)
    return "\n".join(out)


def print_section(section: Section) -> None:
    print(f"\n=== {section.title} ({section.seconds:.1f} s) ===")
    for table in section.tables:
        print()
        print(text_table(table))
    for note in section.notes:
        print(f"note: {note}")
    for finding in section.findings:
        print(f"finding: {finding}")
    for t in section.targets:
        print(f"[{'PASS' if t.passed else 'FAIL'}] target {t.number}: {t.name} -- {t.detail}")
    if section.raw:
        print(section.raw)
    sys.stdout.flush()


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


_PROXY_VARS = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"})


class GunicornServer:
    """The repo's gunicorn (gunicorn.conf.py, wsgi:app) on 127.0.0.1:<free port>, its output in
    a temp log, its sessions in a temp folder; ``env`` is laid over this process's environment
    (proxies, ``drop`` and the metrics folder taken out; no access log: it would dominate)."""

    def __init__(self, prefix: str, env: dict[str, str], drop: tuple[str, ...] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.log_path = self.dir / "gunicorn.log"
        removed = _PROXY_VARS | {"PROMETHEUS_MULTIPROC_DIR", *drop}
        self.env = {k: v for k, v in os.environ.items() if k not in removed}
        self.env.update(SESSIONS_DIR=str(self.dir / "sessions"), GUNICORN_ACCESSLOG="")
        self.env.update(env)
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        args += ["--bind", "127.0.0.1:0", "wsgi:app"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{self.log()[-3000:]}")
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log())
            if m and self.port is None:
                self.port = int(m.group(1))
            if self.port is not None and self._healthy():
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not become healthy:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/api/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def workers(self) -> list[int]:
        """The worker processes' pids (children of the master)."""
        if self.proc is None:
            return []
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
