"""Run the real thing: gunicorn with gunicorn.conf.py on a free port, and a tiny HTTP client.

Waiting is by polling with a deadline (the log for "Listening at", then /api/health), never
by fixed sleeps.  Output goes to a log file the tests read back.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
ERROR_MARKERS = ("Traceback", "[ERROR]", " ERROR ", '"level":"ERROR"', "CRITICAL", "Exception")


def server_env(tmp_path: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    """A clean environment for the server: offline provider, files under tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PROMETHEUS_MULTIPROC_DIR", "LOG_FORMAT"):
        env.pop(key, None)
    env.update(
        SESSIONS_DIR=str(tmp_path / "sessions"),
        DATABASE_URL=database_url or f"sqlite:///{tmp_path / 'agent_council.db'}",
        DB_POOL_SIZE="4",
        DB_MAX_OVERFLOW="4",
        GUNICORN_THREADS="4",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class LiveServer:
    """One gunicorn master; ``start`` waits until it serves, ``stop`` until it exited."""

    tmp_path: Path
    env: dict[str, str]
    workers: int = 2
    preload: bool = False
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.tmp_path / f"gunicorn-{time.monotonic_ns()}.log"

    def start(self, timeout: float = 45.0, ready_lines: int | None = None) -> LiveServer:
        args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        args += ["--bind", "127.0.0.1:0", "--workers", str(self.workers)]
        if self.preload:
            args.append("--preload")
        args += [*self.extra_args, "wsgi:app"]
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed when the process is gone
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while self.port is None:
            self._check_alive()
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
            elif time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start:\n{self.log()}")
            else:
                time.sleep(0.05)
        if ready_lines:
            self.wait_for_log("Agent Council Server ready", ready_lines, deadline)
        while True:
            self._check_alive()
            try:
                status, _, _ = self.request("GET", "/api/health", timeout=3)
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"/api/health never answered 200:\n{self.log()}")
            time.sleep(0.05)

    def wait_for_log(self, text: str, count: int, deadline: float) -> None:
        while self.log().count(text) < count:
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} x {text!r} in the log:\n{self.log()}")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def error_lines(self) -> list[str]:
        return [line for line in self.log().splitlines() if any(m in line for m in ERROR_MARKERS)]

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        assert self.port is not None
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None,
        timeout: float = 10,
    ) -> tuple[int, dict[str, str], Any]:
        """One request (on ``conn`` when given: keep-alive); JSON bodies are decoded."""
        own = conn is None
        conn = conn or self.connection(timeout)
        hdrs = dict(headers or {})
        data: bytes | None = None
        if isinstance(body, dict | list):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str | bytes):
            data = body.encode() if isinstance(body, str) else body
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            out_headers = {k.lower(): v for k, v in resp.getheaders()}
            parsed: Any = raw
            if out_headers.get("content-type", "").startswith("application/json"):
                parsed = json.loads(raw)
            return resp.status, out_headers, parsed
        finally:
            if own:
                conn.close()

    def create_session(self, question: str = "Should we adopt PostgreSQL?") -> str:
        status, _, body = self.request(
            "POST",
            "/api/sessions",
            body=urllib.parse.urlencode({"question": question}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200, body
        return body["session_id"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 45.0) -> int:
        """Signal the master and wait for it (and so its workers) to exit."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(
                    f"gunicorn did not stop in {timeout} s:\n{self.log()}"
                ) from None
        return self.proc.returncode

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
