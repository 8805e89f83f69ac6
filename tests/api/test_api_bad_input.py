"""Every bad-input case of the council API: exact status and a JSON error body, no traceback."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from council_app.settings import Settings
from tests.api.api_helpers import AGENTS, assert_error, built_app, create, put_council

GOOD_ID_SHAPE = "session_20251210_160742_5b86ea"

BAD_IDS = [
    "nope",
    "..%2F..",
    "..%2F..%2Fetc%2Fpasswd",
    "session_20251210_160742_" + "a" * 33,  # suffix too long
    "session_20251210_160742_" + "a" * 300,
    "session_20251210_160742_5B86EA",  # uppercase hex
    "SESSION_20251210_160742_5b86ea",
    "session_2025121_160742_5b86ea",
    "session_20251210_160742_5b86e",  # suffix too short
    "session_20251210_160742_5b86eg",
    "session_\uff12\uff10\uff12\uff15\uff11\uff12\uff11\uff10_160742_5b86ea",  # fullwidth
    "session_20251210_160742_5b86ea%0A",
    "session_20251210_160742_5b86ea%00",
    "%20session_20251210_160742_5b86ea",
]


def _session_routes(sid: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/sessions/{sid}/status"),
        ("GET", f"/api/sessions/{sid}/summary"),
        ("GET", f"/api/sessions/{sid}/results"),
        ("GET", f"/api/sessions/{sid}/reviews"),
        ("GET", f"/api/sessions/{sid}/logs"),
        ("POST", f"/api/sessions/{sid}/build_council"),
        ("POST", f"/api/sessions/{sid}/execute"),
        ("POST", f"/api/sessions/{sid}/peer_review"),
        ("POST", f"/api/sessions/{sid}/synthesize"),
        ("PUT", f"/api/sessions/{sid}/council"),
        ("DELETE", f"/api/sessions/{sid}"),
    ]


def test_malformed_session_id_is_404_on_every_route(client: FlaskClient) -> None:
    for bad_id in BAD_IDS:
        for method, path in _session_routes(bad_id):
            kwargs = {"json": {"agents": AGENTS}} if method == "PUT" else {}
            r = client.open(path, method=method, **kwargs)
            # Werkzeug may refuse %2F inside a path segment before routing: still a JSON 404.
            assert r.status_code == 404, (method, path, r.status_code)
            assert_error(r, 404)


def test_unknown_well_formed_session_id_is_404(client: FlaskClient) -> None:
    for method, path in _session_routes(GOOD_ID_SHAPE):
        kwargs = {"json": {"agents": AGENTS}} if method == "PUT" else {}
        assert_error(client.open(path, method=method, **kwargs), 404, "not_found")


def test_legacy_six_hex_and_new_ids_are_accepted_by_shape(client: FlaskClient) -> None:
    sid = create(client)
    assert client.get(f"/api/sessions/{sid}/status").status_code == 200
    # A well-formed legacy id that does not exist is a plain 404, not a 400.
    assert_error(client.get(f"/api/sessions/{GOOD_ID_SHAPE}/status"), 404, "not_found")


def test_create_without_question_is_400(client: FlaskClient) -> None:
    r = client.post("/api/sessions", data={}, content_type="multipart/form-data")
    assert_error(r, 400)
    r = client.post(
        "/api/sessions",
        data={"files": [(io.BytesIO(b"x"), "a.txt")]},
        content_type="multipart/form-data",
    )
    assert_error(r, 400)


def test_create_with_blank_question_is_400(client: FlaskClient) -> None:
    for question in ("", "   ", "\n\t "):
        r = client.post(
            "/api/sessions", data={"question": question}, content_type="multipart/form-data"
        )
        body = assert_error(r, 400)
        assert "question" in body["detail"]
    assert client.get("/api/sessions").json["sessions"] == []


def test_create_with_json_body_is_415(client: FlaskClient) -> None:
    r = client.post("/api/sessions", json={"question": "Why?"})
    assert_error(r, 415)
    r = client.post("/api/sessions", data="question=x", content_type="text/plain")
    assert_error(r, 415)
    assert client.get("/api/sessions").json["sessions"] == []


def test_upload_of_exe_is_415_and_creates_nothing(client: FlaskClient, app) -> None:
    r = client.post(
        "/api/sessions",
        data={"question": "Q?", "files": [(io.BytesIO(b"MZ\x90\x00"), "setup.exe")]},
        content_type="multipart/form-data",
    )
    assert_error(r, 415)
    assert client.get("/api/sessions").json["sessions"] == []
    root = app.config["COUNCIL_SETTINGS"].sessions_dir
    assert not root.exists() or not any(root.iterdir())


def test_upload_over_max_upload_mb_is_413(backend_settings: Settings) -> None:
    with built_app(backend_settings, max_upload_mb=1) as app:
        client = app.test_client()
        big = io.BytesIO(b"a" * (1024 * 1024 + 1))
        r = client.post(
            "/api/sessions",
            data={"question": "Q?", "files": [(big, "big.txt")]},
            content_type="multipart/form-data",
        )
        assert_error(r, 413)
        assert client.get("/api/sessions").json["sessions"] == []
        # Exactly the limit is fine.
        ok = io.BytesIO(b"a" * (1024 * 1024))
        r = client.post(
            "/api/sessions",
            data={"question": "Q?", "files": [(ok, "ok.txt")]},
            content_type="multipart/form-data",
        )
        assert r.status_code == 200, r.json
        assert r.json["context_files"][0]["size_bytes"] == 1024 * 1024


def test_put_council_non_json_is_400(client: FlaskClient) -> None:
    sid = create(client)
    for body in ("not json", "{", "{'agents': []}", "", "null"):
        r = client.put(f"/api/sessions/{sid}/council", data=body, content_type="application/json")
        assert r.status_code == 400, (body, r.json)
        assert_error(r, 400)
    assert client.get(f"/api/sessions/{sid}/summary").json["council_config"] is None


WRONG_TYPES: list[object] = [
    {"agents": "Economist"},
    {"agents": {"name": "x", "persona": "y"}},
    {"agents": None},
    {},
    [AGENTS[0]],
    "agents",
    42,
    {"agents": AGENTS, "council_name": 7},
    {"agents": AGENTS, "strategy_summary": ["x"]},
]


def test_put_council_wrong_types_is_400(client: FlaskClient) -> None:
    sid = create(client)
    for payload in WRONG_TYPES:
        r = client.put(f"/api/sessions/{sid}/council", json=payload)
        assert r.status_code == 400, (payload, r.json)
        assert_error(r, 400)
    assert client.get(f"/api/sessions/{sid}/summary").json["council_config"] is None


def _agent(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "persona": f"You are {name}.", **extra}


INVALID_COUNCILS: list[tuple[list, str]] = [
    ([], "agents"),
    ([_agent(f"Agent {i}") for i in range(13)], "agents"),
    ([_agent("Twin"), _agent("Twin")], "agents[1].name"),
    ([_agent("Twin"), _agent(" twin ")], "agents[1].name"),
    ([_agent("")], "agents[0].name"),
    ([_agent("   ")], "agents[0].name"),
    ([{"persona": "You are nobody."}], "agents[0].name"),
    ([{"name": "A", "persona": "x" * 4001}], "agents[0].persona"),
    ([{"name": "A", "persona": ""}], "agents[0].persona"),
    ([_agent("A", reasoning_effort="extreme")], "agents[0].reasoning_effort"),
    ([_agent("A", enable_web_search="yes")], "agents[0].enable_web_search"),
    ([_agent("A"), "not an agent"], "agents[1]"),
]


def test_put_council_validation_is_422_with_field_errors(client: FlaskClient) -> None:
    sid = create(client)
    for agents, field in INVALID_COUNCILS:
        r = client.put(f"/api/sessions/{sid}/council", json={"agents": agents})
        assert r.status_code == 422, (field, r.json)
        body = assert_error(r, 422, "validation_error")
        assert isinstance(body.get("errors"), list) and body["errors"]
        assert field in [e["field"] for e in body["errors"]], (field, body["errors"])
        assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])
    # Nothing was stored.
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["council_config"] is None and summary["status"] == "idle"


def test_put_council_reports_every_field_at_once(client: FlaskClient) -> None:
    sid = create(client)
    agents = [
        {"name": "", "persona": "x" * 4001, "reasoning_effort": "extreme"},
        _agent("B"),
    ]
    body = assert_error(client.put(f"/api/sessions/{sid}/council", json={"agents": agents}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"agents[0].name", "agents[0].persona", "agents[0].reasoning_effort"} <= fields


def test_put_council_limits_are_inclusive(client: FlaskClient) -> None:
    sid = create(client)
    twelve = [_agent(f"Agent {i}") for i in range(12)]
    twelve[0]["persona"] = "y" * 4000
    for effort in ("none", "minimal", "low", "medium", "high", "xhigh"):
        twelve[1]["reasoning_effort"] = effort
        council = put_council(client, sid, twelve)
        assert len(council["agents"]) == 12
        assert council["agents"][1]["reasoning_effort"] == effort
    assert len(council["agents"][0]["persona"]) == 4000


def test_bad_force_flag_is_400(client: FlaskClient) -> None:
    sid = create(client)
    for value in ("maybe", "2", "tru", "yess", "null"):
        for step in ("build_council", "execute", "peer_review", "synthesize"):
            body = assert_error(client.post(f"/api/sessions/{sid}/{step}?force={value}"), 400)
            assert "force" in body["detail"]
        body = assert_error(client.delete(f"/api/sessions/{sid}?hard={value}"), 400)
        assert "hard" in body["detail"]
    # The session was not touched by any of these.
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "idle"


BAD_PAGING = [
    "limit=abc",
    "limit=0",
    "limit=-1",
    "limit=501",
    "limit=1.5",
    "limit=1_0",
    "limit=+5",
    "limit=%20%205",
    "limit=%EF%BC%95",  # fullwidth 5
    "offset=x",
    "offset=-5",
]


def test_bad_list_paging_is_400(client: FlaskClient) -> None:
    for query in BAD_PAGING:
        r = client.get(f"/api/sessions?{query}")
        assert r.status_code == 400, query
        body = assert_error(r, 400)
        assert query.split("=")[0] in body["detail"]


def test_bad_logs_limit_is_400(client: FlaskClient) -> None:
    sid = create(client)
    assert_error(client.get(f"/api/sessions/{sid}/logs?limit=abc"), 400)


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    for path in ("/api/nope", "/api/sessions/x/y/z", "/api/sessions/session_1/unknown_step"):
        assert_error(client.get(path), 404)
        assert_error(client.post(path), 404)


def test_unknown_step_of_real_session_is_json_404(client: FlaskClient) -> None:
    sid = create(client)
    assert_error(client.post(f"/api/sessions/{sid}/conquer"), 404)


def test_wrong_method_is_json_405(client: FlaskClient) -> None:
    sid = create(client)
    for method, suffix in [
        ("GET", "/execute"),
        ("GET", "/build_council"),
        ("DELETE", "/status"),
        ("POST", "/summary"),
        ("POST", "/council"),
        ("PATCH", ""),
    ]:
        r = client.open(f"/api/sessions/{sid}{suffix}", method=method)
        assert r.status_code == 405, (method, suffix)
        assert_error(r, 405)
        assert r.headers.get("Allow")


def test_wrong_method_on_collection_is_json_405(client: FlaskClient) -> None:
    assert_error(client.delete("/api/sessions"), 405)
    assert_error(client.put("/api/sessions"), 405)


def test_results_before_execute_is_json_404(client: FlaskClient) -> None:
    sid = create(client)
    assert_error(client.get(f"/api/sessions/{sid}/results"), 404)


def test_oversized_question_is_400(client: FlaskClient) -> None:
    r = client.post(
        "/api/sessions", data={"question": "q" * 20_001}, content_type="multipart/form-data"
    )
    assert_error(r, 400)


def test_request_over_max_content_length_is_json_413(backend_settings: Settings) -> None:
    with built_app(backend_settings, max_content_length_mb=1, max_upload_mb=5) as app:
        client = app.test_client()
        big = io.BytesIO(b"a" * (2 * 1024 * 1024))
        r = client.post(
            "/api/sessions",
            data={"question": "Q?", "files": [(big, "big.txt")]},
            content_type="multipart/form-data",
        )
        assert_error(r, 413)
        assert client.get("/api/sessions").json["sessions"] == []


def test_council_cap_is_the_council_max_agents_setting(backend_settings: Settings) -> None:
    """COUNCIL_MAX_AGENTS moves the cap, and the OpenAPI document says so."""
    with built_app(backend_settings, council_max_agents=16) as app:
        client = app.test_client()
        sid = create(client)
        assert len(put_council(client, sid, [_agent(f"A{i}") for i in range(16)])["agents"]) == 16
        seventeen = {"agents": [_agent(f"A{i}") for i in range(17)]}
        body = assert_error(client.put(f"/api/sessions/{sid}/council", json=seventeen), 422)
        assert "1 to 16 agents" in body["detail"]
        spec = client.get("/api/openapi.json").json
        assert spec["components"]["schemas"]["Council"]["properties"]["agents"]["maxItems"] == 16
        ui = client.get("/ui/domain.js").get_data(as_text=True)  # the web UI's cap too
        assert "export const MAX_AGENTS = Object.freeze(16);" in ui
