"""The contract, tested against the live server: schemathesis drives every operation of
/api/openapi.json under gunicorn and checks for 5xx and for answers that break the schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .live_server import LiveServer, server_env

pytestmark = pytest.mark.slow

# Examples per operation (and per phase): enough to reach NUL characters, invalid UTF-8 and
# odd content types in every operation, bounded so the run stays around a minute (50: 27
# operations, about 1,750 cases, 37 s of schemathesis on the 2-core CI machine).
MAX_EXAMPLES = 50

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def schemathesis_cli() -> str:
    local = Path(sys.executable).parent / "st"
    found = str(local) if local.exists() else shutil.which("st")
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -r requirements-dev.txt)")
    return found


def test_live_server_keeps_its_openapi_contract(tmp_path: Path) -> None:
    cli = schemathesis_cli()
    env = server_env(tmp_path, None, WEB_CONCURRENCY="2", PROGRESS_API="1")
    with LiveServer(tmp_path, env, workers=2) as server:
        server.start(ready_lines=2)
        # One schemathesis worker: hypothesis parsing lambdas from several threads trips a
        # CPython 3.11 ast bug ("AST constructor recursion depth mismatch").
        args = [
            cli,
            "run",
            f"http://127.0.0.1:{server.port}/api/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--seed",
            "20261124",
            "--no-shrink",
            "--request-timeout",
            "10",
        ]
        done = subprocess.run(
            args, cwd=tmp_path, capture_output=True, text=True, timeout=480, check=False
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-6000:]
        assert " passed" in output
        assert server.stop() == 0
    assert server.error_lines() == [], server.error_lines()[:20]
