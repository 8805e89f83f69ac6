"""The whole workflow through PgBouncer in transaction pooling mode.

Transaction pooling hands each transaction to whichever server connection is free, so
nothing may live on a connection between transactions: no session advisory locks (ours
are ``pg_advisory_xact_lock``), no session ``SET``, no server-side prepared statements
(psycopg2 has none).  A dedicated database keeps the test free of the ``options`` startup
parameter the other tests use for their schema.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from council_app.settings import normalize_database_url
from tests.internals import store_of, stored_hot

from .conftest import create_session, make_app

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ADMIN_URL = normalize_database_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
)[0]


def _pgbouncer() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if found is None:
        message = "pgbouncer is not installed (bash scripts/install_system_deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bouncer_db() -> Iterator[str]:
    """A fresh database for this test, dropped afterwards."""
    name = f"council_bouncer_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as e:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {e}")
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def bouncer_url(bouncer_db: str) -> Iterator[str]:
    """Start PgBouncer (transaction mode) in front of ``bouncer_db``; its URL."""
    binary = _pgbouncer()
    upstream = make_url(ADMIN_URL)
    port = _free_port()
    # PgBouncer refuses to run as root: run it as postgres, in a directory it can write.
    workdir = Path(tempfile.mkdtemp(prefix="council-pgbouncer-"))
    user = upstream.username or "postgres"
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
council = host={upstream.host or "127.0.0.1"} port={upstream.port or 5432} dbname={bouncer_db}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "userlist.txt"}
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
logfile = {workdir / "pgbouncer.log"}
pidfile = {workdir / "pgbouncer.pid"}
"""
    )
    command = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        for child in workdir.iterdir():
            shutil.chown(child, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = make_url(ADMIN_URL).set(port=port, database="council", host="127.0.0.1")
    rendered = url.render_as_string(hide_password=False)
    try:
        engine = sa.create_engine(rendered, connect_args={"connect_timeout": 2})
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"pgbouncer exited with {proc.returncode}: {out}")
            try:
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT current_database()")).scalar() == (
                        bouncer_db
                    )
                break
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        engine.dispose()
        yield rendered
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log = workdir / "pgbouncer.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        shutil.rmtree(workdir, ignore_errors=True)
        # Protocol-level trouble (state the pooler could not carry) shows up here.
        bad = [ln for ln in text.splitlines() if " ERROR " in ln or "FATAL" in ln]
        assert not bad, "\n".join(bad[:20])


def test_whole_workflow_through_pgbouncer_transaction_mode(
    bouncer_url: str, tmp_path: Path
) -> None:
    # A pool bigger than PgBouncer's server pool: transactions must share server connections.
    app = make_app(
        tmp_path,
        database_url=bouncer_url,
        db_pool_size=6,
        db_max_overflow=4,
        progress_api=True,
    )
    try:
        svc = app.extensions["council"]
        assert svc.states.backend == "postgresql"
        client = app.test_client()
        health = client.get("/api/health")
        assert health.status_code == 200, health.get_json()
        sids = [create_session(client, f"Question {i} via PgBouncer?") for i in range(3)]
        failures: list[str] = []

        def run(sid: str) -> None:
            c = app.test_client()
            try:
                r = c.post(f"/api/sessions/{sid}/build_council")
                assert r.status_code == 200, r.get_data(as_text=True)
                r = c.post(f"/api/sessions/{sid}/execute")
                assert r.status_code == 200, r.get_data(as_text=True)
                assert svc.workflow.join(sid, 60)
                r = c.post(f"/api/sessions/{sid}/peer_review")
                assert r.status_code == 200, r.get_data(as_text=True)
                assert svc.workflow.join(sid, 60)
                r = c.post(f"/api/sessions/{sid}/synthesize")
                assert r.status_code == 200, r.get_data(as_text=True)
                assert r.get_json()["verdict"]
                for n in range(20):  # write-behind progress through the pooler too
                    r = c.post(f"/api/sessions/{sid}/progress", json={"progress": {"n": n}})
                    assert r.status_code == 202
            except AssertionError as e:  # collected: threads cannot fail the test directly
                failures.append(f"{sid}: {e}")

        threads = [threading.Thread(target=run, args=(sid,)) for sid in sids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not failures, failures
        assert svc.states.flush(10)
        for sid in sids:
            summary = client.get(f"/api/sessions/{sid}/summary").get_json()
            assert summary["status"] == "verdict_complete", summary["status"]
            assert summary["chairman_verdict"]
            assert summary["execution_results"] and summary["peer_reviews"]
            status = client.get(f"/api/sessions/{sid}/status").get_json()
            assert status["progress"]["execution"] is not None
            hot = stored_hot(svc, sid)
            assert hot["progress"]["n"] == 19
        listed = client.get("/api/sessions").get_json()["sessions"]
        assert {s["session_id"] for s in listed} >= set(sids)
        # Schema creation again (advisory xact lock) through the pooler: idempotent.
        store_of(svc).create_schema()
        assert client.delete(f"/api/sessions/{sids[0]}?hard=true").status_code == 200
    finally:
        app.extensions["council"].shutdown()
