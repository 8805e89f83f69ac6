"""Target 16.2: hundreds of councils at once on one host.

N councils of 5 members execute at once on the real server (gunicorn.conf.py, 2 workers)
against a loopback OpenAI-compatible endpoint (bench/fake_llm.py) that answers every call
after 3 s, streamed.  Measured: that every run completes; the most LLM calls ever in
flight (seen by the endpoint; bounded by ``LLM_MAX_CONCURRENCY`` per worker when the app
has it); each worker's RSS and thread count sampled every second; ``/status`` latency of
pollers hammering random sessions during the run; non-200 answers and pool errors in the
server log (a pool checkout that waits past its timeout is a 503 there).

Usage: python bench/bench_councils.py [--smoke] [--councils N] [--latency S]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import ROOT, GunicornServer, Section, Table, Target, bench_schema, print_section

HOST = "127.0.0.1"
MEMBERS = 5
POLLERS = 8
WORKERS = 2
AGENTS = [
    {"name": f"Member {i + 1}", "persona": f"You are council member {i + 1}, a careful analyst."}
    for i in range(MEMBERS)
]
POOL_ERRORS = re.compile(r"QueuePool limit|TimeoutError|Traceback|pool.*exhaust", re.I)


def request(port: int, method: str, path: str, body: Any = None, form: bool = False) -> Any:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        headers = {}
        data = None
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw)
    finally:
        conn.close()


class FakeLlm:
    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "fake_llm.py"), "--latency", str(latency)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake LLM did not start: {line}")
        self.port = int(line.split()[1])

    def stats(self) -> dict[str, int]:
        status, body = request(self.port, "GET", "/stats")
        return body if status == 200 else {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Server(GunicornServer):
    """The app with WORKERS workers, its provider the loopback streamed LLM at ``llm_port``."""

    def __init__(self, url: str, llm_port: int, extra_env: dict[str, str]) -> None:
        super().__init__(
            "council-councils-",
            {
                "DATABASE_URL": url,
                "OPENAI_API_KEY": "bench",
                "OPENAI_BASE_URL": f"http://{HOST}:{llm_port}/v1",
                "COUNCIL_MODEL": "bench-model",
                "LLM_STREAM": "true",
                "WEB_CONCURRENCY": str(WORKERS),
                "AUTH_MODE": "dev",
                "NO_PROXY": "127.0.0.1,localhost",
                **extra_env,
            },
        )

    def start(self, timeout: float = 90) -> None:
        super().start(timeout)


def proc_figures(pid: int) -> tuple[float, int]:
    """(RSS MiB, threads) of one process, (0, 0) once it is gone."""
    rss, threads = 0.0, 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


class Sampler(threading.Thread):
    """Every second: each worker's RSS and threads, and the LLM calls in flight."""

    def __init__(self, server: Server, llm: FakeLlm, stop: threading.Event) -> None:
        super().__init__(daemon=True, name="sampler")
        self.server, self.llm, self.stop = server, llm, stop
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            figures = [proc_figures(pid) for pid in self.server.workers()]
            try:
                in_flight = self.llm.stats().get("in_flight", 0)
            except OSError:
                in_flight = -1
            self.samples.append(
                {
                    "t": time.monotonic() - self.t0,
                    "rss": [f[0] for f in figures],
                    "threads": [f[1] for f in figures],
                    "llm_in_flight": in_flight,
                }
            )
            self.stop.wait(1.0)


class Pollers:
    """POLLERS threads polling /status of random sessions over keep-alive connections."""

    def __init__(self, port: int, sids: list[str], stop: threading.Event) -> None:
        self.port, self.sids, self.stop = port, sids, stop
        self.latencies: list[float] = []
        self.codes: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.poll, args=(i,)) for i in range(POLLERS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(60)

    def poll(self, seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        mine: list[float] = []
        codes: dict[int, int] = {}
        while not self.stop.is_set():
            began = time.perf_counter()
            try:
                conn.request("GET", f"/api/sessions/{rng.choice(self.sids)}/status")
                resp = conn.getresponse()
                resp.read()
                code = resp.status
                if resp.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            except (OSError, http.client.HTTPException):
                code = 0
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            mine.append((time.perf_counter() - began) * 1000)
            codes[code] = codes.get(code, 0) + 1
        conn.close()
        with self.lock:
            self.latencies += mine
            for code, n in codes.items():
                self.codes[code] = self.codes.get(code, 0) + n


def prepare(port: int, count: int) -> list[str]:
    def one(i: int) -> str:
        status, created = request(
            port, "POST", "/api/sessions", {"question": f"Bench council {i}: ship it?"}, form=True
        )
        assert status in (200, 201), (status, created)
        sid = created["session_id"]
        council = {"council_name": "Bench council", "strategy_summary": "s", "agents": AGENTS}
        status, body = request(port, "PUT", f"/api/sessions/{sid}/council", council)
        assert status == 200, (status, body)
        return sid

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(smoke: bool = False, councils: int | None = None, latency: float | None = None) -> Section:
    started = time.perf_counter()
    councils = councils or (6 if smoke else 500)
    latency = latency if latency is not None else (0.3 if smoke else 3.0)
    section = Section(f"{councils} councils of {MEMBERS} members at once (target 16.2)")
    limit_env = os.environ.get("LLM_MAX_CONCURRENCY", "")
    extra = {"LLM_MAX_CONCURRENCY": limit_env} if limit_env else {}
    with bench_schema("councils") as url:
        llm = FakeLlm(latency)
        server = Server(url, llm.port, extra)
        try:
            server.start()
            sids = prepare(server.port, councils)
            stop = threading.Event()
            sampler = Sampler(server, llm, stop)
            sampler.start()
            pollers = Pollers(server.port, sids, stop)
            pollers.start()
            time.sleep(1 if smoke else 2)  # the idle baseline
            fired = time.monotonic()
            baseline = 1 if smoke else 2
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(
                        lambda s: request(server.port, "POST", f"/api/sessions/{s}/execute"), sids
                    )
                )
            fire_s = time.monotonic() - fired
            accepted = sum(
                1 for status, body in answers if status == 200 and body.get("status") == "accepted"
            )
            statuses: dict[str, str] = {}
            deadline = time.monotonic() + (120 if smoke else 1200)
            pending = list(sids)
            while pending and time.monotonic() < deadline:
                still = []
                for sid in pending:
                    status, body = request(server.port, "GET", f"/api/sessions/{sid}/status")
                    if status == 200 and body.get("status") not in ("executing", "queued"):
                        statuses[sid] = body.get("status")
                    else:
                        still.append(sid)
                pending = still
                if pending:
                    time.sleep(1.0)
            done_s = time.monotonic() - fired
            time.sleep(1 if smoke else 3)  # the settled tail
            stop.set()
            pollers.join()
            sampler.join(10)
            stats = llm.stats()
            log = server.log()
        finally:
            server.stop()
            llm.stop()
    completed = sum(1 for s in statuses.values() if s == "execution_complete")
    samples = sampler.samples
    workers = max((len(s["rss"]) for s in samples), default=0)
    # After ramp-up: from 10 s (or a quarter of the run) after the last execute was fired
    # until the last run finished; flat means no growth in that window.
    ramp_end = baseline + fire_s + min(10.0, done_s / 4)
    running = [s for s in samples if ramp_end <= s["t"] <= baseline + done_s and s["rss"]]
    if not running:  # a run too short for the window (smoke): every sample after the fire
        running = [s for s in samples if s["t"] >= baseline and s["rss"]] or samples[-1:]
    rows = []
    step = max(1, len(samples) // 24)
    for s in samples[::step]:
        rows.append(
            [
                f"{s['t']:.0f}",
                *[f"{r:.0f}" for r in s["rss"]],
                *[str(t) for t in s["threads"]],
                s["llm_in_flight"],
            ]
        )
    headers = [
        "t s",
        *[f"RSS MiB w{i + 1}" for i in range(workers)],
        *[f"threads w{i + 1}" for i in range(workers)],
        "LLM calls in flight",
    ]
    rows = [r for r in rows if len(r) == len(headers)]
    section.tables.append(
        Table(
            f"Workers over time ({councils} councils x {MEMBERS} members, LLM answers after "
            f"{latency:g} s, streamed; sampled every second, every {step}th sample shown)",
            headers,
            rows,
        )
    )
    rss_after = [max(s["rss"]) for s in running] or [0.0]
    threads_after = [max(s["threads"]) for s in running] or [0]
    p50 = percentile(pollers.latencies, 0.50)
    p99 = percentile(pollers.latencies, 0.99)
    non200 = sum(n for code, n in pollers.codes.items() if code != 200)
    pool_lines = [ln for ln in log.splitlines() if POOL_ERRORS.search(ln)]
    section.tables.append(
        Table(
            "Outcome",
            ["figure", "value"],
            [
                ["councils started (200 accepted)", f"{accepted} / {councils}"],
                ["councils completed", f"{completed} / {councils}"],
                ["time to fire every execute", f"{fire_s:.1f} s"],
                ["time until every run finished", f"{done_s:.1f} s"],
                ["LLM calls served", stats.get("calls", 0)],
                ["most LLM calls in flight at once", stats.get("max_in_flight", 0)],
                ["LLM_MAX_CONCURRENCY", limit_env or "(app default)"],
                ["/status polls during the run", len(pollers.latencies)],
                ["/status p50 / p99 ms", f"{p50:.1f} / {p99:.1f}"],
                ["/status non-200 answers", non200],
                ["pool or traceback lines in the server log", len(pool_lines)],
                [
                    "worker RSS after ramp-up: min / max MiB",
                    f"{min(rss_after):.0f} / {max(rss_after):.0f}",
                ],
                [
                    "worker threads after ramp-up: min / max",
                    f"{min(threads_after)} / {max(threads_after)}",
                ],
            ],
        )
    )
    if pool_lines:
        section.notes.append("server log: " + " | ".join(pool_lines[:5]))
    flat = max(rss_after) <= min(rss_after) * 1.25 + 20
    section.targets.append(
        Target(
            "16.2",
            f"{councils} councils at once",
            completed == councils and non200 == 0 and not pool_lines and flat,
            f"{completed}/{councils} completed in {done_s:.0f} s; LLM calls in flight max "
            f"{stats.get('max_in_flight', 0)}; worker RSS after ramp-up {min(rss_after):.0f}-"
            f"{max(rss_after):.0f} MiB, threads {min(threads_after)}-{max(threads_after)}; "
            f"/status p99 {p99:.0f} ms over {len(pollers.latencies):,} polls, non-200 {non200}; "
            f"pool errors {len(pool_lines)}",
        )
    )
    section.seconds = time.perf_counter() - started
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--councils", type=int, default=None)
    parser.add_argument("--latency", type=float, default=None)
    args = parser.parse_args(argv)
    print_section(run(args.smoke, args.councils, args.latency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
