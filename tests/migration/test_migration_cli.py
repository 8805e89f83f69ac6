"""The command line itself: refusals, --help, a real subprocess killed mid-run, batching."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from council_app.migration import cli as cli_module
from council_app.migration import runner, source, target
from council_app.migration.report import Progress
from council_app.settings import Settings
from council_app.store.postgres import PostgresStore
from tests.migration.legacy_tree import write_tree
from tests.migration.migration_helpers import Cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (None, "DATABASE_URL is not set"),
        ("", "DATABASE_URL is not set"),
        ("sqlite:///agent_council.db", "not PostgreSQL"),
        ("mysql://u@h/db", "not supported"),
        ("postgresql+pg8000://u@h/db", "not supported"),
        ("::::", "not a database URL"),
    ],
)
def test_refuses_without_postgresql_in_one_line(url: str | None, words: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    env = {} if url is None else {"DATABASE_URL": url}
    assert cli_module.main([], env, stdout=out, stderr=err) == 2
    assert err.getvalue().count("\n") == 1
    assert words in err.getvalue() and "refusing" in err.getvalue()
    assert out.getvalue() == ""


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["--help"], {})
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    flags = ["--sessions-dir", "--sqlite-url", "--default-user", "--dry-run", "--verify"]
    flags += ["--force", "--batch-size", "--export", "--quiet", "--verbose", "--json"]
    for flag in flags:
        assert flag in text
    assert "_stop" not in text  # the test hook stays hidden
    for words in ("exit status", "unchanged", "skipped", "not valid JSON", "session_id"):
        assert words in text


def test_asyncpg_url_is_accepted_and_quiet_prints_only_the_summary(
    cli: Cli, tmp_path: Path, pg_url: str
) -> None:
    sdir = tmp_path / "sessions"
    write_tree(sdir, 2, 1_000)
    url = pg_url.replace("postgresql+psycopg2://", "postgresql+asyncpg://")
    result = cli("--sessions-dir", str(sdir), "--quiet", url=url, json=False)
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.startswith("Migration summary")
    for label in ("scanned", "migrated", "updated", "unchanged", "skipped (database newer)"):
        assert f"  {label} " in result.out
    assert "rewritten to postgresql+psycopg2" in result.out


def test_unreachable_database_aborts_in_one_line(cli: Cli, tmp_path: Path) -> None:
    write_tree(tmp_path / "sessions", 1, 1_000)
    url = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    result = cli("--sessions-dir", str(tmp_path / "sessions"), url=url)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "refusing to run: cannot reach" in result.err
    assert result.out == ""  # no all-zero summary before a refusal


def test_progress_bar_on_a_terminal_and_plain_lines_otherwise() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, plain = Tty(), io.StringIO()
    for out in (tty, plain):
        progress = Progress(out, 10, "migrate")
        progress.advance(4, 4_000_000)
        progress.advance(6, 6_000_000)
        progress.close()
    assert tty.getvalue().startswith("\rmigrate [") and "10/10 sessions" in tty.getvalue()
    assert tty.getvalue().endswith("\n")
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("migrate: 4/10 sessions  4.0 MB")
    assert lines[-1].startswith("migrate: 10/10 sessions  10.0 MB")
    assert "\r" not in plain.getvalue()


def test_explicit_sqlite_url_must_exist(cli: Cli, tmp_path: Path) -> None:
    result = cli("--sessions-dir", str(tmp_path), "--sqlite-url", f"sqlite:///{tmp_path}/no.db")
    assert result.code == 2 and "no such file" in result.err


def test_one_statement_per_batch(cli: Cli, tmp_path: Path) -> None:
    sdir = tmp_path / "sessions"
    write_tree(sdir, 7, 1_000)
    seen: list[str] = []

    def count(conn, cursor, statement, params, context, executemany) -> None:
        if "jsonb_to_recordset" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        result = cli("--sessions-dir", str(sdir), "--batch-size", "3")
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert result.counts["migrated"] == 7
    assert len(seen) == 3  # 3 + 3 + 1


def test_a_session_postgresql_refuses_fails_alone(tmp_path: Path, pg_url: str) -> None:
    """If PostgreSQL rejects one document, the batch is retried session by session."""
    sdir = tmp_path / "sessions"
    good = write_tree(sdir, 3, 1_000)
    items = [i for i in source.iter_tree(sdir, None, "u") if isinstance(i, source.Item)]
    bad = items[1]
    bad.state_json = b'{"question": "a\\u0000b"}'  # slipped past the checks
    store = PostgresStore(Settings(database_url=pg_url, sessions_dir=sdir))
    store.create_schema()
    try:
        with store.engine.connect() as conn:
            target.prepare_connection(conn)
            batcher = runner._Batcher(conn, target.MIGRATE_SQL, False, write=True)
            outcomes = batcher.run(items)
        assert outcomes[bad.session_id][0] == target.FAILED
        assert "refused by PostgreSQL" in outcomes[bad.session_id][1]
        assert sorted(k for k, v in outcomes.items() if v == target.MIGRATED) == sorted(
            set(good) - {bad.session_id}
        )
    finally:
        store.close()


def test_interrupted_run_leaves_whole_batches_and_rerun_completes(
    cli: Cli, tmp_path: Path, pg_url: str
) -> None:
    sdir = tmp_path / "sessions"
    write_tree(sdir, 12, 2_000)
    cmd = [sys.executable, str(ROOT / "migrate_state.py"), "--sessions-dir", str(sdir)]
    cmd += ["--batch-size", "5", "--_stop-after-batches", "1"]
    env = {**os.environ, "DATABASE_URL": pg_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        states = conn.execute(sa.text("SELECT count(*) FROM session_state")).scalar()
        metas = conn.execute(sa.text("SELECT count(*) FROM sessions")).scalar()
    engine.dispose()
    assert (states, metas) == (5, 5)  # the first batch, whole; nothing of the second

    rerun = cli("--sessions-dir", str(sdir), "--batch-size", "5")
    assert rerun.code == 0
    assert rerun.counts["migrated"] == 7 and rerun.counts["unchanged"] == 5
    verified = cli("--verify", "--sessions-dir", str(sdir))
    assert verified.code == 0 and verified.counts["match"] == 12


def test_real_subprocess_prints_json_summary(tmp_path: Path, pg_url: str) -> None:
    sdir = tmp_path / "sessions"
    write_tree(sdir, 2, 1_000)
    (sdir / "session_20251210_160742_aaaaaa").mkdir()
    (sdir / "session_20251210_160742_aaaaaa" / "state.json").write_bytes(b"{")
    cmd = [sys.executable, str(ROOT / "migrate_state.py"), "--sessions-dir", str(sdir)]
    env = {**os.environ, "DATABASE_URL": pg_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*cmd, "--json"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 1
    import orjson

    summary = orjson.loads(proc.stdout)
    assert summary["counts"]["migrated"] == 2 and summary["counts"]["failed"] == 1
    assert summary["failures"][0]["reason"].startswith("invalid JSON")
