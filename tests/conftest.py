"""Shared fixtures: a real PostgreSQL per test (own schema), the embedded backend in tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from council_app.settings import Settings, normalize_database_url
from council_app.store.scratch import scratch_schema

TEST_DATABASE_URL = normalize_database_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
)[0]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_pg_problem: str | None = None
_pg_checked = False


def _require_postgres() -> None:
    """In CI a missing PostgreSQL fails the test; on a laptop it skips with the reason."""
    global _pg_checked, _pg_problem
    if not _pg_checked:
        _pg_checked = True
        engine = sa.create_engine(TEST_DATABASE_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as e:  # any reason at all means: no usable PostgreSQL
            _pg_problem = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
        finally:
            engine.dispose()
    if _pg_problem:
        message = (
            f"PostgreSQL is not reachable at {TEST_DATABASE_URL} ({_pg_problem}). "
            "Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
            "or set TEST_DATABASE_URL."
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    _require_postgres()
    with scratch_schema(TEST_DATABASE_URL) as url:
        yield url


def sqlite_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'agent_council.db'}",
        "sessions_dir": tmp_path / "sessions",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def postgres_settings(url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "sessions_dir": tmp_path / "sessions",
        "db_pool_size": 5,
        "db_max_overflow": 5,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for each backend in turn: every test using it runs on both."""
    if request.param == "sqlite":
        return sqlite_settings(tmp_path)
    url = request.getfixturevalue("pg_url")
    return postgres_settings(url, tmp_path)
