"""/api/health on both backends, and a 503 within the time bound when the database is gone."""

from __future__ import annotations

import time
from dataclasses import asdict

from sqlalchemy.engine import make_url

from council_app import create_app
from tests.conftest import TEST_DATABASE_URL, postgres_settings
from tests.tcp_proxy import TcpProxy


def test_health_ok(client, backend_settings) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json
    assert body["status"] == "ok"
    assert body["backend"] == backend_settings.backend
    assert body["database"]["ok"] is True
    assert isinstance(body["database"]["latency_ms"], float)
    assert body["provider"]["name"] == "offline"
    assert body["provider"]["offline"] is True
    assert "canned" in body["provider"]["hint"]  # the UI's banner text
    assert body["flusher"]["pending_sessions"] == 0
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_health_503_when_database_down_and_password_masked(pg_url, tmp_path) -> None:
    target = make_url(TEST_DATABASE_URL)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port, password="s3cret-pw")
    settings = postgres_settings(url.render_as_string(hide_password=False), tmp_path)
    app = create_app({**asdict(settings), "openai_api_key": None})
    client = app.test_client()
    try:
        assert client.get("/api/health").status_code == 200
        proxy.cut()
        started = time.monotonic()
        r = client.get("/api/health")
        elapsed = time.monotonic() - started
        assert r.status_code == 503
        assert r.json["status"] == "unavailable"
        assert r.json["database"]["ok"] is False
        assert elapsed < 2.5
        assert "s3cret-pw" not in r.get_data(as_text=True)
        assert "***" in r.json["database_url"]
        r = client.get("/api/sessions")
        assert r.status_code == 503
        assert r.json["error"] == "storage_unavailable" and r.json["detail"]
        proxy.restore()
        assert client.get("/api/health").status_code == 200  # pool recovers, no restart
    finally:
        app.extensions["council"].shutdown(timeout=1)
        proxy.close()
