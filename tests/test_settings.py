"""Environment → typed settings: URL forms, invalid values, masked passwords."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from council_app.settings import ConfigError, load_settings, mask_url, normalize_database_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://u:secret@db:5432/council",
        "postgres://u:secret@db:5432/council",
        "postgresql+psycopg2://u:secret@db:5432/council",
        "postgresql+asyncpg://u:secret@db:5432/council",
    ],
)
def test_every_postgres_form_becomes_psycopg2(raw: str) -> None:
    url, _ = normalize_database_url(raw)
    assert url == "postgresql+psycopg2://u:secret@db:5432/council"
    assert load_settings({"DATABASE_URL": raw}).backend == "postgresql"


def test_asyncpg_rewrite_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        load_settings({"DATABASE_URL": "postgresql+asyncpg://u:secret@db/council"})
    assert "rewritten to postgresql+psycopg2" in caplog.text
    assert "secret" not in caplog.text


def test_sqlite_url_and_default() -> None:
    assert load_settings({"DATABASE_URL": "sqlite:////tmp/x.db"}).backend == "sqlite"
    default = load_settings({})
    assert default.backend == "sqlite"
    assert default.database_url == "sqlite:///agent_council.db"
    assert default.sessions_dir == Path("sessions")
    assert (default.db_pool_size, default.db_max_overflow) == (10, 20)
    assert default.state_flush_interval_ms == 350
    assert default.council_max_agents == 12 and default.state_file_mirror is True
    assert default.legacy_owner == "dev-user@localhost"


def test_move_settings() -> None:
    """The settings of the move off the old server: agent cap, mirror, legacy owner."""
    s = load_settings(
        {
            "COUNCIL_MAX_AGENTS": "20",
            "STATE_FILE_MIRROR": "0",
            "MIGRATION_ADMIN_EXTERNAL_ID": " admin@corp.example ",
        }
    )
    assert (s.council_max_agents, s.state_file_mirror) == (20, False)
    assert s.legacy_owner == "admin@corp.example"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"DB_POOL_SIZE": "ten"}, "DB_POOL_SIZE='ten' is invalid; expected a whole number"),
        ({"DB_MAX_OVERFLOW": "-1"}, "DB_MAX_OVERFLOW='-1' is invalid"),
        ({"STATE_FLUSH_INTERVAL_MS": "0"}, "STATE_FLUSH_INTERVAL_MS='0' is invalid"),
        ({"STATE_GIN_INDEX": "maybe"}, "STATE_GIN_INDEX='maybe' is invalid"),
        ({"DATABASE_URL": "mysql://u:pw@h/db"}, "scheme 'mysql' is not supported"),
        ({"DATABASE_URL": "postgresql+pg8000://u:pw@h/db"}, "driver 'pg8000' is not supported"),
        ({"AUTH_MODE": "token"}, "AUTH_MODE=token needs AUTH_TOKENS"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml' is invalid"),
        ({"COUNCIL_MAX_AGENTS": "0"}, "COUNCIL_MAX_AGENTS='0' is invalid"),
        ({"STATE_FILE_MIRROR": "maybe"}, "STATE_FILE_MIRROR='maybe' is invalid"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert needle in str(info.value)
    assert "pw" not in str(info.value)


def test_mask_url_hides_password() -> None:
    masked = mask_url("postgresql+psycopg2://user:hunter2@db:5432/council")
    assert masked == "postgresql+psycopg2://user:***@db:5432/council"


def test_token_settings_keep_only_digests() -> None:
    settings = load_settings({"AUTH_MODE": "token", "AUTH_TOKENS": "alice=tok-a,bob=tok-b"})
    users = [u for u, _ in settings.auth_tokens]
    assert users == ["alice", "bob"]
    assert all(len(d) == 64 and "tok" not in d for _, d in settings.auth_tokens)


def test_invalid_setting_stops_startup_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "DB_POOL_SIZE": "lots", "SESSIONS_DIR": str(tmp_path / "s")}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3  # gunicorn's WORKER_BOOT_ERROR: the arbiter stops
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "Configuration error: DB_POOL_SIZE='lots' is invalid; expected a whole number "
        "from 1 to 1000"
    ]


def test_dotenv_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "# the old server's advice: keep the key here\n"
        "OPENAI_API_KEY=sk-from-dotenv\n"
        "COUNCIL_MODEL=model-from-dotenv\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("COUNCIL_MODEL", "model-from-environment")
    settings = load_settings()
    assert settings.openai_api_key == "sk-from-dotenv"
    assert settings.council_model == "model-from-environment"


def test_no_dotenv_file_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert load_settings().openai_api_key is None
