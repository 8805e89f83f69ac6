"""bench/load_status.py keeps working: a small, short run with zero errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .live_server import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_load_bench_smoke(pg_url: str) -> None:  # pg_url: skips (or fails in CI) without PG
    args = [sys.executable, "bench/load_status.py", "--smoke", "--json"]
    args += ["--pollers", "40", "--sessions", "4", "--workers", "2", "--threads", "4"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["errors"] == 0 and figures["requests"] > 0
    assert figures["executes_started"] >= 4
