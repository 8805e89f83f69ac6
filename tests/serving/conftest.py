"""Fixtures for the serving tests: an in-process app with the serving layer switched on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from council_app import create_app
from council_app.settings import Settings


def make_app(tmp_path: Path, **overrides: object) -> Flask:
    """An app on the embedded SQLite backend in tmp_path, offline provider, fast flushes."""
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'agent_council.db'}",
        "sessions_dir": tmp_path / "sessions",
        "openai_api_key": None,
        "offline_latency_ms": 0,
        "state_flush_interval_ms": 50,
    }
    values.update(overrides)
    Settings(**values)  # type: ignore[arg-type]  # fail early on a misspelt field
    app = create_app(values)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    application = make_app(tmp_path, progress_api=True)
    yield application
    application.extensions["council"].shutdown()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def create_session(client: FlaskClient, question: str = "Is PostgreSQL a good fit?") -> str:
    r = client.post("/api/sessions", data={"question": question})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["session_id"]
