"""Every operation of /api/openapi.json, sent bodies a careless or hostile client sends: NUL
characters, invalid UTF-8, odd content types.  Never a 5xx, every error a JSON
``{"error", "message", "detail"}`` (the contract test's schemathesis run covers valid and
schema-shaped input; this covers what no schema describes)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from council_app.services import Services
from tests.api.api_helpers import AGENTS, put_council

BODIES: list[tuple[str, bytes]] = [
    ("application/json", b'{"agents": [{"name": "a\\u0000b", "persona": "p"}]}'),
    ("application/json", b'{"question": "nul \x00 raw"}'),
    ("application/json", b"\xff\xfe\xfd not utf-8"),
    ("application/json", b'\xef\xbb\xbf{"agents": []}'),  # BOM
    ("application/json; charset=latin-1", '{"agents": "caf\xe9"}'.encode("latin-1")),
    ("application/json", b'{"a": ' * 200 + b"1" + b"}" * 200),
    ("application/json", b"[]"),
    ("application/json", b"null"),
    ("application/json", b'"\\ud800"'),
    ("application/json", b"NaN"),
    ("text/plain", b"question=hello"),
    ("application/xml", b"<question>hello</question>"),
    ("application/x-www-form-urlencoded", b"question=%00%ff&files=x"),
    ("application/x-www-form-urlencoded", b"question=\xff\xfe"),
    ("multipart/form-data", b"no boundary at all"),
    (
        "multipart/form-data; boundary=XX",
        b'--XX\r\nContent-Disposition: form-data; name="question"\r\n\r\n\xff\x00\r\n--XX--\r\n',
    ),
    (
        "multipart/form-data; boundary=XX",
        b'--XX\r\nContent-Disposition: form-data; name="files"; filename="a\x00.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhi\r\n--XX--\r\n",
    ),
    ("", b"\x00\x01\x02"),
    ("image/png", b"\x89PNG\r\n\x1a\n"),
]


def operations(client: FlaskClient, sid: str) -> list[tuple[str, str]]:
    """(method, concrete path) for every operation in the document."""
    spec = client.get("/api/openapi.json").json
    found = []
    for template, methods in spec["paths"].items():
        path = template.replace("{session_id}", sid)
        path = re.sub(r"\{[^}]+\}", "x", path)
        for method in methods:
            found.append((method.upper(), path))
    return found


def assert_json_error_or_success(r: Any, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.get_data(as_text=True)[:300])
    if r.status_code >= 400:
        assert r.mimetype == "application/json", (what, r.status_code, r.mimetype)
        body = r.json
        assert isinstance(body, dict), what
        for key in ("error", "message", "detail"):
            assert isinstance(body.get(key), str) and body[key], (what, body)


@pytest.mark.parametrize("backend_settings", ["sqlite"], indirect=True)
def test_no_operation_answers_odd_bodies_with_a_5xx(client: FlaskClient, svc: Services) -> None:
    sid = client.post(
        "/api/sessions", data={"question": "Odd bodies?"}, content_type="multipart/form-data"
    ).json["session_id"]
    put_council(client, sid, AGENTS)
    ops = operations(client, sid)
    assert len(ops) >= 15
    for method, path in ops:
        if method == "DELETE":
            continue  # would end the session for the operations after it; checked last
        for content_type, body in BODIES:
            headers = {"Content-Type": content_type} if content_type else {}
            r = client.open(path, method=method, data=body, headers=headers)
            assert_json_error_or_success(r, f"{method} {path} [{content_type}] {body[:40]!r}")
            svc.workflow.join(sid, 30)  # a step started by a body it accepted: let it end
    for content_type, body in BODIES:
        r = client.delete(f"/api/sessions/{sid}", data=body, headers={"Content-Type": content_type})
        assert_json_error_or_success(r, f"DELETE [{content_type}]")


@pytest.mark.parametrize("backend_settings", ["sqlite"], indirect=True)
def test_odd_query_strings_paths_and_headers_are_4xx_not_5xx(client: FlaskClient) -> None:
    sid = client.post(
        "/api/sessions", data={"question": "Odd queries?"}, content_type="multipart/form-data"
    ).json["session_id"]
    queries = ["force=%ff%fe", "force=%00", "limit=%00", "limit=1e309", "offset=-0", "q=%ed%a0%80"]
    queries += ["cursor=%ff", "hard=tru%00e", "limit=" + "9" * 400, "%ff=%ff"]
    for method, path in operations(client, sid):
        for query in queries:
            r = client.open(f"{path}?{query}", method=method if method != "DELETE" else "GET")
            assert_json_error_or_success(r, f"{method} {path}?{query}")
    for path in ("/api/sessions/%00", "/api/sessions/%ff%fe/status", "/api/sessions/" + "a" * 5000):
        assert_json_error_or_success(client.get(path), path)
    for value in ("\xff\xfe", "a\tb", "x" * 10_000):
        r = client.get("/api/sessions", headers={"X-User-Id": value})
        assert_json_error_or_success(r, f"X-User-Id {value[:10]!r}")
        r = client.get("/api/me", headers={"Authorization": f"Bearer {value}"})
        assert_json_error_or_success(r, f"Authorization {value[:10]!r}")
