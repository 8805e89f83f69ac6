"""LOG_FORMAT=json: one JSON object per line, with the request id and the session id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from council_app.logging_setup import configure_logging
from council_app.store import StoreError
from tests.internals import store_of

from .conftest import create_session, make_app


@pytest.fixture
def json_app(tmp_path: Path) -> Iterator[tuple[Flask, io.StringIO]]:
    application = make_app(tmp_path, log_format="json", state_flush_interval_ms=60_000)
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_council", False))
    stream = io.StringIO()
    old = handler.setStream(stream)  # type: ignore[attr-defined]

    @application.get("/api/sessions/<session_id>/test-log")
    def _log_something(session_id: str) -> str:
        logging.getLogger("council_app.test").warning("inside a request")
        return "ok"

    try:
        yield application, stream
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]
        application.extensions["council"].shutdown()
        configure_logging("text")


def lines(stream: io.StringIO) -> list[dict]:
    text = stream.getvalue()
    out = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(out) == len([line for line in text.splitlines() if line.strip()])
    return out


def test_json_lines_carry_request_and_session_ids(json_app: tuple[Flask, io.StringIO]) -> None:
    app, stream = json_app
    client = app.test_client()
    sid = create_session(client)
    r = client.get(f"/api/sessions/{sid}/test-log", headers={"X-Request-Id": "req-42.abc"})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] == "req-42.abc"
    entries = [e for e in lines(stream) if e["message"] == "inside a request"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["request_id"] == "req-42.abc"
    assert entry["session_id"] == sid
    assert entry["level"] == "WARNING" and entry["logger"] == "council_app.test"

    # No context leaks into the next request or into log lines outside requests.
    logging.getLogger("council_app.test").warning("outside")
    outside = next(e for e in lines(stream) if e["message"] == "outside")
    assert "request_id" not in outside and "session_id" not in outside


def test_request_id_is_generated_when_absent_or_unsafe(json_app: tuple[Flask, io.StringIO]) -> None:
    app, _ = json_app
    client = app.test_client()
    generated = client.get("/api/health").headers["X-Request-Id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    forged = client.get("/api/health", headers={"X-Request-Id": 'x" {"level":"ERROR"}'})
    assert forged.headers["X-Request-Id"] != 'x" {"level":"ERROR"}'
    assert len(forged.headers["X-Request-Id"]) == 32
    assert client.get("/api/health").headers["X-Request-Id"] != generated


def test_a_generated_request_id_is_the_same_in_the_log_and_the_header(
    json_app: tuple[Flask, io.StringIO],
) -> None:
    app, stream = json_app
    client = app.test_client()
    sid = create_session(client)
    ids = [client.get(f"/api/sessions/{sid}/test-log").headers["X-Request-Id"] for _ in range(2)]
    logged = [e["request_id"] for e in lines(stream) if e["message"] == "inside a request"]
    assert logged == ids and ids[0] != ids[1]


def test_flusher_failure_text_survives_json(
    json_app: tuple[Flask, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, stream = json_app
    client = app.test_client()
    sid = create_session(client)
    svc = app.extensions["council"]
    r = client.post(
        f"/api/sessions/{sid}/progress",
        json={"progress": {"n": 1}},
        headers={"X-Request-Id": "p-1"},
    )
    assert r.status_code == 404  # PROGRESS_API is off in this app

    def fail(writes: object) -> list[str]:
        raise StoreError("database is down (test)")

    svc.states.progress(sid, {"progress": {"n": 1}})
    monkeypatch.setattr(store_of(svc), "write_progress", fail)
    assert svc.states.flush() is False
    warning = [e for e in lines(stream) if "Warning: batched update failed" in e["message"]]
    assert warning and warning[0]["level"] == "WARNING"
    monkeypatch.undo()
    assert svc.states.flush(5)
