"""One source of truth: the models that validate a request are the ones the document shows,
so what the document allows is accepted and what it forbids is refused, in the API's
error shape; the origin-compatible 200s are described with their Location header."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.api_helpers import AGENTS, assert_error, create


def _document(client: FlaskClient) -> dict[str, Any]:
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    return r.json


def _query_schema(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    params = doc["paths"][path][method]["parameters"]
    found = [p for p in params if p["in"] == "query" and p["name"] == name]
    assert found, (path, method, name)
    return found[0]["schema"]


def test_the_hand_kept_schema_and_validation_are_gone() -> None:
    for module in ("council_app.api.openapi", "council_app.workflow.validation"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(module)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/sessions", "limit"),
        ("/api/sessions", "offset"),
        ("/api/sessions/{session_id}/logs", "limit"),
    ],
)
def test_integer_bounds_in_the_document_are_the_ones_enforced(
    client: FlaskClient, path: str, param: str
) -> None:
    sid = create(client)
    schema = _query_schema(_document(client), path, "get", param)
    url = path.replace("{session_id}", sid)
    low, high = schema["minimum"], schema["maximum"]
    for accepted in (low, high):
        r = client.get(f"{url}?{param}={accepted}")
        assert r.status_code == 200, (param, accepted, r.json)
    for refused in (low - 1, high + 1):
        body = assert_error(client.get(f"{url}?{param}={refused}"), 400, "bad_request")
        assert param in body["detail"]
        assert [e["field"] for e in body["errors"]] == [param]


def test_council_limits_in_the_document_are_the_ones_enforced(client: FlaskClient) -> None:
    doc = _document(client)
    agent = doc["components"]["schemas"]["Agent"]["properties"]
    name_max, persona_max = agent["name"]["maxLength"], agent["persona"]["maxLength"]
    efforts = next(
        s for s in doc["components"]["schemas"].values() if "minimal" in s.get("enum", [])
    )
    sid = create(client)
    url = f"/api/sessions/{sid}/council"

    ok = [
        {"name": "n" * name_max, "persona": "p" * persona_max, "reasoning_effort": effort}
        for effort in efforts["enum"][:1]
    ] + [{"name": f"E{e}", "persona": "x", "reasoning_effort": e} for e in efforts["enum"]]
    r = client.put(url, json={"agents": ok})
    assert r.status_code == 200, r.json

    too_long = [{"name": "n" * (name_max + 1), "persona": "p" * (persona_max + 1)}]
    body = assert_error(client.put(url, json={"agents": too_long}), 422, "validation_error")
    assert {e["field"] for e in body["errors"]} == {"agents[0].name", "agents[0].persona"}


def test_origin_compatible_200s_are_described_with_location(client: FlaskClient) -> None:
    doc = _document(client)
    for path in (
        "/api/sessions",
        "/api/sessions/{session_id}/execute",
        "/api/sessions/{session_id}/peer_review",
    ):
        responses = doc["paths"][path]["post"]["responses"]
        assert not {"201", "202"} & set(responses), path
        ok = responses["200"]
        assert "old server" in ok["description"], path
        assert ok["headers"]["Location"]["schema"] == {"type": "string"}, path
        assert ok["content"]["application/json"]["schema"]["$ref"].startswith(
            "#/components/schemas/"
        )

    sid = create(client)
    client.put(f"/api/sessions/{sid}/council", json={"agents": AGENTS})
    r = client.post(f"/api/sessions/{sid}/execute")
    assert r.status_code == 200 and r.json["status"] == "accepted"
    assert r.headers["Location"] == f"/api/sessions/{sid}/status"


def test_every_refusal_of_a_validated_request_is_the_error_shape(client: FlaskClient) -> None:
    sid = create(client)
    cases = [
        client.get("/api/sessions?limit=x"),
        client.get("/api/sessions?cursor=abc&offset=3"),
        client.post(f"/api/sessions/{sid}/execute?retry=everyone"),
        client.delete(f"/api/sessions/{sid}?hard=perhaps"),
        client.post("/api/sessions", data={"question": "  "}, content_type="multipart/form-data"),
        client.put(f"/api/sessions/{sid}/council", json={"agents": [{"name": 3}]}),
    ]
    for r in cases:
        assert r.status_code in (400, 422), (r.status_code, r.json)
        body = assert_error(r, r.status_code)
        assert all(set(e) == {"field", "message"} for e in body.get("errors", []))


def test_who_asks_comes_before_what_is_wrong_with_the_request(backend_settings: Any) -> None:
    """Without a valid token a malformed request is a 401, not a 400 that answers the
    stranger's question; with one, the 400 (validation runs before the view)."""
    import hashlib

    from tests.api.api_helpers import built_app

    digest = hashlib.sha256(b"alice-token").hexdigest()
    with built_app(backend_settings, auth_mode="token", auth_tokens=(("alice", digest),)) as app:
        client = app.test_client()
        good = {"Authorization": "Bearer alice-token"}
        for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401), (good, 400)):
            assert_error(client.get("/api/sessions?limit=abc", headers=headers), status)
            r = client.put(
                "/api/sessions/session_20251210_160742_5b86ea/council",
                json={"agents": "x"},
                headers=headers,
            )
            assert_error(r, status)
