"""A database whose schema this code cannot use stops gunicorn (exit 3, one line naming
the command to run) instead of serving 503s under a healthy /api/health; so does a bad
setting, which used to make gunicorn respawn its workers forever (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from council_app.settings import Settings
from council_app.store import build_store
from tests.migration.old_server_shapes import build_old_server
from tests.serving.live_server import ROOT, server_env

pytestmark = pytest.mark.slow


def _gunicorn(tmp_path: Path, env: dict[str, str], workers: int = 1) -> tuple[int, str]:
    args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
    args += ["--bind", "127.0.0.1:0", "--workers", str(workers), "wsgi:app"]
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _refusals(log: str, prefix: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(prefix)]


def test_old_postgresql_schema_stops_gunicorn(pg_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(pg_url)
    build_old_server(engine, tmp_path / "sessions")
    engine.dispose()
    code, log = _gunicorn(tmp_path, server_env(tmp_path, pg_url))
    assert code == 3, log
    lines = _refusals(log, "Database not usable:")
    assert len(lines) == 1 and "python migrate_state.py" in lines[0], log
    assert "Traceback" not in log
    assert "Booting worker" not in log  # refused in the master, before any worker

    # A worker that gets there anyway (the master's check is the early path) refuses the
    # same way: the WSGI module exits 3 with the same line.
    done = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env=server_env(tmp_path, pg_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert _refusals(done.stderr, "Database not usable:") == lines


def test_newer_schema_revision_stops_gunicorn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agent_council.db'}"
    store = build_store(Settings(database_url=url, sessions_dir=tmp_path / "sessions"))
    store.create_schema()
    store.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    code, log = _gunicorn(tmp_path, server_env(tmp_path, url), workers=2)
    assert code == 3, log
    lines = _refusals(log, "Database not usable:")
    assert lines and all("9999" in line for line in lines), log
    assert "Traceback" not in log


def test_bad_setting_stops_gunicorn(tmp_path: Path) -> None:
    env = server_env(tmp_path, None, DB_POOL_SIZE="lots")
    code, log = _gunicorn(tmp_path, env, workers=2)
    assert code == 3, log
    assert _refusals(log, "Configuration error: DB_POOL_SIZE='lots'"), log
    assert "Traceback" not in log
