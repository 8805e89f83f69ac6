"""/api/openapi.json describes every route of the url_map, with requests and responses."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_route_is_in_the_document(app: Flask, client: FlaskClient) -> None:
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    spec = r.get_json()
    assert spec["openapi"].startswith("3.")
    missing = []
    for rule in app.url_map.iter_rules():
        for method in (rule.methods or set()) - IGNORED_METHODS:
            op = spec["paths"].get(openapi_path(rule.rule), {}).get(method.lower())
            if op is None:
                missing.append(f"{method} {rule.rule}")
    assert not missing, missing
    assert "/api/sessions/{session_id}/progress" in spec["paths"]  # PROGRESS_API=1 here


def test_api_operations_describe_requests_and_responses(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    ids = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["operationId"] not in ids
            ids.add(op["operationId"])
            assert op["responses"], (method, path)
            for name in re.findall(r"{([^}]+)}", path):
                assert any(p["in"] == "path" and p["name"] == name for p in op["parameters"])
            if not path.startswith("/api/"):
                continue
            assert "not described" not in op["summary"], (method, path)
            ok = [c for c in op["responses"] if c.startswith("2")]
            assert ok, (method, path)
            if method in ("put",) or path.endswith("/progress"):
                assert op["requestBody"]["content"]["application/json"]["schema"]
    create = spec["paths"]["/api/sessions"]["post"]
    assert "multipart/form-data" in create["requestBody"]["content"]
    assert create["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SessionCreated"
    }
    status = spec["paths"]["/api/sessions/{session_id}/status"]["get"]
    assert {"200", "404"} <= set(status["responses"])
    refs = re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', str(spec).replace("'", '"'))
    for kind, name in refs:
        assert name in spec["components"][kind], name


def test_validates_as_openapi_3(client: FlaskClient) -> None:
    import pytest

    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(client.get("/api/openapi.json").get_json())
