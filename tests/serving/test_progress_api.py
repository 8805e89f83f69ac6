"""POST /api/sessions/<id>/progress: off by default, validated, write-behind when on."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.internals import stored_hot

from .conftest import create_session, make_app


def test_progress_is_accepted_and_reaches_status(app: Flask, client: FlaskClient) -> None:
    sid = create_session(client)
    for i in range(5):
        r = client.post(
            f"/api/sessions/{sid}/progress",
            json={"execution_status": {f"agent{i}": "done"}, "progress": {"execution": i}},
        )
        assert r.status_code == 202 and r.get_json() == {"status": "accepted"}
    status = client.get(f"/api/sessions/{sid}/status").get_json()
    assert status["execution_status"] == {f"agent{i}": "done" for i in range(5)}
    assert status["progress"]["execution"] == 4
    svc = app.extensions["council"]
    assert svc.states.flush(5)
    hot = stored_hot(svc, sid)
    assert hot["execution_status"] == {f"agent{i}": "done" for i in range(5)}


def test_progress_rejects_bad_bodies_and_unknown_sessions(client: FlaskClient) -> None:
    sid = create_session(client)
    url = f"/api/sessions/{sid}/progress"
    for body in ({}, [], {"status": {"x": 1}}, {"progress": 3}):
        r = client.post(url, json=body)
        assert r.status_code == 400, body
    assert client.post(url, data="not json", content_type="text/plain").status_code == 400
    r = client.post("/api/sessions/nope/progress", json={"progress": {"x": 1}})
    assert r.status_code == 404
    other = client.post(url, json={"progress": {"x": 1}}, headers={"X-User-Id": "someone-else"})
    assert other.status_code == 404


def test_progress_route_is_off_by_default(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        client = app.test_client()
        sid = create_session(client)
        r = client.post(f"/api/sessions/{sid}/progress", json={"progress": {"x": 1}})
        assert r.status_code == 404
        assert (
            "/api/sessions/{session_id}/progress"
            not in client.get("/api/openapi.json").get_json()["paths"]
        )
    finally:
        app.extensions["council"].shutdown()
