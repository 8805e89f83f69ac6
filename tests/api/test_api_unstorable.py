"""Validation at the door: what PostgreSQL JSONB or orjson cannot keep is a 422 naming the
field, on both backends, and nothing of it is stored (counted before and after)."""

from __future__ import annotations

import io

import pytest
from flask.testing import FlaskClient

from council_app.services import Services
from council_app.workflow.storable import MAX_JSON_DEPTH
from tests.api.api_helpers import AGENTS, assert_error, built_app, create
from tests.internals import flusher_of, stored_hot

NUL = "\x00"


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def session_count(client: FlaskClient) -> int:
    return len(client.get("/api/sessions?limit=500").json["sessions"])


def test_question_or_file_name_with_nul_is_422_and_creates_nothing(client) -> None:
    before = session_count(client)
    r = client.post("/api/sessions", data={"question": f"Why{NUL}not?"})
    body = assert_error(r, 422, "unstorable_input")
    assert body["field"] == "question" and "U+0000" in body["message"]
    r = client.post(
        "/api/sessions",
        data={"question": "Fine", "files": [(io.BytesIO(b"hello"), f"notes{NUL}.txt")]},
        content_type="multipart/form-data",
    )
    assert assert_error(r, 422, "unstorable_input")["field"] == "files[0] file name"
    assert session_count(client) == before


def test_query_parameter_with_nul_is_422(client) -> None:
    assert_error(client.get(f"/api/sessions?q=a{NUL}b"), 422, "unstorable_input")


@pytest.mark.parametrize(
    ("agents", "field"),
    [
        ([{**AGENTS[0], "persona": f"You are{NUL} careful."}], "body.agents[0].persona"),
        ([{**AGENTS[0], "name": f"A{NUL}"}], "body.agents[0].name"),
        ([{**AGENTS[0], f"k{NUL}": 1}], "body.agents[0] key"),
        ([{**AGENTS[0], "extra": nested(MAX_JSON_DEPTH + 1)}], "body.agents[0].extra.x"),
    ],
)
def test_council_put_with_unstorable_values_is_422_and_keeps_the_council(
    client, agents, field
) -> None:
    sid = create(client)
    good = client.put(f"/api/sessions/{sid}/council", json={"agents": AGENTS})
    assert good.status_code == 200
    r = client.put(f"/api/sessions/{sid}/council", json={"agents": agents})
    body = assert_error(r, 422, "unstorable_input")
    assert body["field"].startswith(field)
    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert [a["name"] for a in summary["council_config"]["agents"]] == [a["name"] for a in AGENTS]


def test_lone_surrogate_escape_in_a_json_body_is_422(client) -> None:
    sid = create(client)
    raw = '{"agents": [{"name": "A", "persona": "\\ud800 alone"}]}'
    r = client.put(f"/api/sessions/{sid}/council", data=raw, content_type="application/json")
    assert "surrogate" in assert_error(r, 422, "unstorable_input")["message"]


def test_deep_but_storable_council_extra_is_not_refused_by_the_door(client) -> None:
    sid = create(client)
    agents = [{**AGENTS[0], "extra": nested(MAX_JSON_DEPTH - 5)}]
    assert client.put(f"/api/sessions/{sid}/council", json={"agents": agents}).status_code == 200


def test_progress_reports_unstorable_are_422_and_every_202_lands(backend_settings) -> None:
    with built_app(backend_settings, progress_api=True) as app:
        client = app.test_client()
        svc: Services = app.extensions["council"]
        sid = create(client)
        url = f"/api/sessions/{sid}/progress"
        bad = [
            {"progress": {"note": f"a{NUL}b"}},
            {"execution_status": {f"agent{NUL}": "done"}},
            {"progress": {"deep": nested(MAX_JSON_DEPTH + 1)}},
        ]
        for body in bad:
            assert_error(client.post(url, json=body), 422, "unstorable_input")
        surrogate = client.post(
            url, data='{"progress": {"n": "\\udc00"}}', content_type="application/json"
        )
        assert_error(surrogate, 422, "unstorable_input")
        accepted = 0
        for i in range(20):
            r = client.post(url, json={"execution_status": {f"agent{i}": "done"}})
            accepted += r.status_code == 202
        assert accepted == 20
        assert svc.states.flush(5)
        hot = stored_hot(svc, sid)
        assert len(hot["execution_status"]) == accepted
        assert svc.states.stats.failed_flushes == 0


def test_health_reports_an_entry_the_database_refused(client, svc) -> None:
    good, bad = create(client), create(client)
    # An entry point that skipped the door (internal code): the flusher still copes.
    flusher_of(svc).update_progress(bad, {"progress": {"note": "\ud800"}})
    flusher_of(svc).update_progress(good, {"progress": {"execution": 7}})
    svc.states.flush(5)
    health = client.get("/api/health")
    assert health.status_code == 200
    assert health.json["flusher"]["rejected"] == 1
    assert health.json["flusher"]["rejected_sessions"] == [bad]
    assert client.get(f"/api/sessions/{good}/status").json["progress"]["execution"] == 7


def test_identity_with_nul_never_reaches_a_500(client) -> None:
    # Not a value the door checks: PostgreSQL's refusal is a 422, never a 500/503
    # (SQLite keeps the NUL and answers normally).
    r = client.get("/api/sessions", headers={"X-User-Id": "eve\x00"})
    assert r.status_code < 500, r.get_data(as_text=True)
    if r.status_code != 200:
        assert_error(r, 422, "unstorable_input")
