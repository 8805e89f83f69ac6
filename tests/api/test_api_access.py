"""Users (dev header and bearer tokens), deletes, CORS, uploads and logs over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from council_app.services import Services
from council_app.settings import Settings
from tests.api.api_helpers import (
    AGENTS,
    assert_error,
    built_app,
    create,
    execute_and_wait,
    put_council,
    review_and_wait,
)

ALICE = {"X-User-Id": "alice"}
BOB = {"X-User-Id": "bob"}


def every_route(sid: str) -> list[tuple[str, str, dict]]:
    """(method, path, kwargs) of every route that names a session."""
    return [
        ("GET", f"/api/sessions/{sid}/status", {}),
        ("GET", f"/api/sessions/{sid}/summary", {}),
        ("GET", f"/api/sessions/{sid}/results", {}),
        ("GET", f"/api/sessions/{sid}/reviews", {}),
        ("GET", f"/api/sessions/{sid}/logs", {}),
        ("POST", f"/api/sessions/{sid}/build_council?force=true", {}),
        ("PUT", f"/api/sessions/{sid}/council", {"json": {"agents": AGENTS}}),
        ("POST", f"/api/sessions/{sid}/execute?force=true", {}),
        ("POST", f"/api/sessions/{sid}/peer_review?force=true", {}),
        ("POST", f"/api/sessions/{sid}/synthesize?force=true", {}),
        ("POST", f"/api/sessions/{sid}/cancel", {}),
        ("DELETE", f"/api/sessions/{sid}", {}),
        ("DELETE", f"/api/sessions/{sid}?hard=true", {}),
    ]


def finished_session(client: FlaskClient, svc: Services, headers: dict[str, str]) -> str:
    sid = create(client, headers=headers)
    r = client.put(f"/api/sessions/{sid}/council", json={"agents": AGENTS}, headers=headers)
    assert r.status_code == 200
    assert client.post(f"/api/sessions/{sid}/execute", headers=headers).status_code == 200
    assert svc.workflow.join(sid, 30)
    assert client.post(f"/api/sessions/{sid}/peer_review", headers=headers).status_code == 200
    assert svc.workflow.join(sid, 30)
    assert client.post(f"/api/sessions/{sid}/synthesize", headers=headers).status_code == 200
    return sid


# -- users ------------------------------------------------------------------------------


def test_other_users_session_is_404_everywhere(client: FlaskClient, svc: Services) -> None:
    sid = finished_session(client, svc, ALICE)
    before = client.get(f"/api/sessions/{sid}/summary", headers=ALICE).json
    for method, path, kwargs in every_route(sid):
        r = client.open(path, method=method, headers=BOB, **kwargs)
        body = assert_error(r, 404, "not_found")
        assert "alice" not in json.dumps(body)
    # The dev default user is just another user.
    assert_error(client.get(f"/api/sessions/{sid}/status"), 404)
    assert client.get("/api/sessions", headers=BOB).json["sessions"] == []
    assert client.get("/api/sessions").json["sessions"] == []
    listed = client.get("/api/sessions", headers=ALICE).json["sessions"]
    assert [s["session_id"] for s in listed] == [sid]
    # Nothing bob did changed alice's session.
    after = client.get(f"/api/sessions/{sid}/summary", headers=ALICE).json
    assert after["status"] == "verdict_complete"
    assert after["chairman_verdict"] == before["chairman_verdict"]
    assert after["council_config"] == before["council_config"]


def test_list_is_newest_first_and_pages(client: FlaskClient) -> None:
    sids = [create(client, question=f"Question {i}?", headers=ALICE) for i in range(4)]
    create(client, headers=BOB)
    listed = client.get("/api/sessions", headers=ALICE).json
    got = [s["session_id"] for s in listed["sessions"]]
    assert sorted(got) == sorted(sids)
    created = [s["created_at"] for s in listed["sessions"]]
    assert created == sorted(created, reverse=True)
    assert got == list(reversed(sids))
    entry = listed["sessions"][0]
    assert set(entry) >= {
        "session_id",
        "question",
        "current_step",
        "status",
        "created_at",
        "updated_at",
        "last_cost_usd",
        "last_total_tokens",
    }
    assert entry["question"] == "Question 3?" and entry["status"] == "idle"
    page = client.get("/api/sessions?limit=2&offset=1", headers=ALICE).json["sessions"]
    assert [s["session_id"] for s in page] == got[1:3]


TOKENS = {"alice": "alice-secret-token", "bob": "bob-secret-token"}


@pytest.fixture
def token_client(backend_settings: Settings):
    tokens = tuple((user, hashlib.sha256(tok.encode()).hexdigest()) for user, tok in TOKENS.items())
    with built_app(
        backend_settings,
        auth_mode="token",
        auth_tokens=tokens,
        cors_origins=("https://council.example.org",),
    ) as app:
        yield app.test_client()


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


def test_token_mode_requires_a_good_token(token_client: FlaskClient) -> None:
    client = token_client
    for headers in (
        {},
        {"X-User-Id": "alice"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKENS['alice']}"},
        {"Authorization": TOKENS["alice"]},
        {"Authorization": f"Bearer {TOKENS['alice']}x"},
    ):
        assert_error(client.get("/api/sessions", headers=headers), 401, "unauthorized")
        r = client.post(
            "/api/sessions",
            data={"question": "Q?"},
            content_type="multipart/form-data",
            headers=headers,
        )
        assert_error(r, 401)

    sid = create(client, headers=bearer("alice"))
    assert client.get(f"/api/sessions/{sid}/status", headers=bearer("alice")).status_code == 200
    # Case of the scheme does not matter; the token does.
    lower = {"Authorization": f"bearer {TOKENS['alice']}"}
    assert client.get(f"/api/sessions/{sid}/status", headers=lower).status_code == 200
    assert_error(client.get(f"/api/sessions/{sid}/status"), 401)
    assert_error(
        client.get(f"/api/sessions/{sid}/status", headers={"Authorization": "Bearer nope"}), 401
    )
    # Another token is another user: 404, and X-User-Id cannot override a token.
    assert_error(client.get(f"/api/sessions/{sid}/status", headers=bearer("bob")), 404)
    spoof = {**bearer("bob"), "X-User-Id": "alice"}
    assert_error(client.get(f"/api/sessions/{sid}/summary", headers=spoof), 404)
    assert client.get("/api/sessions", headers=bearer("bob")).json["sessions"] == []
    mine = client.get("/api/sessions", headers=bearer("alice")).json["sessions"]
    assert [s["session_id"] for s in mine] == [sid]


def test_token_mode_preflight_needs_no_token(token_client: FlaskClient) -> None:
    r = token_client.options(
        "/api/sessions",
        headers={
            "Origin": "https://council.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://council.example.org"
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


# -- deletes ----------------------------------------------------------------------------


def test_soft_delete_is_410_everywhere(client: FlaskClient, svc: Services) -> None:
    sid = finished_session(client, svc, ALICE)
    folder = Path(svc.settings.sessions_dir) / sid
    assert folder.is_dir()
    r = client.delete(f"/api/sessions/{sid}", headers=ALICE)
    assert r.status_code == 200
    assert r.json == {"session_id": sid, "deleted": True, "hard": False}
    for method, path, kwargs in every_route(sid):
        assert_error(client.open(path, method=method, headers=ALICE, **kwargs), 410, "gone")
        # Still not revealed to others.
        assert_error(client.open(path, method=method, headers=BOB, **kwargs), 404)
    assert client.get("/api/sessions", headers=ALICE).json["sessions"] == []
    # A soft delete keeps the files.
    assert folder.is_dir() and any(folder.iterdir())


def test_hard_delete_removes_the_folder(client: FlaskClient, svc: Services) -> None:
    sid = create(client, headers=ALICE, files=[(io.BytesIO(b"keep me out of sight"), "notes.txt")])
    put_council(client, sid, headers=ALICE)
    assert client.post(f"/api/sessions/{sid}/execute", headers=ALICE).status_code == 200
    assert svc.workflow.join(sid, 30)
    other = create(client, headers=ALICE)
    root = Path(svc.settings.sessions_dir)
    assert (root / sid / "uploaded_files").is_dir()
    assert (root / sid / "logs").is_dir()

    assert_error(client.delete(f"/api/sessions/{sid}?hard=true", headers=BOB), 404)
    assert (root / sid).is_dir()
    r = client.delete(f"/api/sessions/{sid}?hard=true", headers=ALICE)
    assert r.status_code == 200 and r.json["hard"] is True
    assert not (root / sid).exists()
    for method, path, kwargs in every_route(sid):
        r = client.open(path, method=method, headers=ALICE, **kwargs)
        assert r.status_code in (404, 410), (path, r.status_code)
        assert_error(r, r.status_code)
    listed = client.get("/api/sessions", headers=ALICE).json["sessions"]
    assert [s["session_id"] for s in listed] == [other]
    assert client.get(f"/api/sessions/{other}/status", headers=ALICE).status_code == 200


def test_soft_then_hard_delete(client: FlaskClient, svc: Services) -> None:
    sid = create(client, files=[(io.BytesIO(b"abc"), "a.md")])
    assert client.delete(f"/api/sessions/{sid}").status_code == 200
    folder = Path(svc.settings.sessions_dir) / sid
    assert folder.exists()
    # Once deleted, the session is gone for every route, including another delete.
    assert_error(client.delete(f"/api/sessions/{sid}?hard=true"), 410)


# -- CORS -------------------------------------------------------------------------------


@pytest.fixture
def cors_client(backend_settings: Settings):
    with built_app(backend_settings, cors_origins=("http://localhost:5173",)) as app:
        yield app.test_client()


def preflight(client: FlaskClient, path: str, method: str, origin: str):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "Content-Type",
        },
    )


def test_cors_preflight_from_dev_client(cors_client: FlaskClient) -> None:
    client = cors_client
    sid = create(client)
    for method, path in [
        ("POST", "/api/sessions"),
        ("POST", f"/api/sessions/{sid}/execute"),
        ("PUT", f"/api/sessions/{sid}/council"),
        ("DELETE", f"/api/sessions/{sid}"),
    ]:
        r = preflight(client, path, method, "http://localhost:5173")
        assert r.status_code in (200, 204), (path, r.status_code)
        assert r.headers.get("Access-Control-Allow-Origin") == "http://localhost:5173"
        methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
        assert method in methods, (method, methods)
        assert "content-type" in r.headers["Access-Control-Allow-Headers"].lower()
    # The preflight did not run the step.
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "idle"
    # Actual requests carry the header too.
    r = client.get("/api/sessions", headers={"Origin": "http://localhost:5173"})
    assert r.headers.get("Access-Control-Allow-Origin") == "http://localhost:5173"
    # A request without Origin (curl, a script, a same-origin page) is not a CORS request:
    # no CORS headers, and no CORS work on the polling path.
    r = client.get(f"/api/sessions/{sid}/status")
    assert r.status_code == 200
    assert not [k for k, _ in r.headers.items() if k.lower().startswith("access-control-")]


def test_cors_other_origins_get_no_allow_origin(cors_client: FlaskClient) -> None:
    client = cors_client
    sid = create(client)
    for origin in ("http://evil.example", "http://localhost:5174", "https://localhost:5173"):
        for method, path in [
            ("POST", "/api/sessions"),
            ("PUT", f"/api/sessions/{sid}/council"),
            ("DELETE", f"/api/sessions/{sid}"),
        ]:
            r = preflight(client, path, method, origin)
            assert "Access-Control-Allow-Origin" not in r.headers, (origin, dict(r.headers))
        r = client.get("/api/sessions", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in r.headers
    # Nothing was deleted by the preflights.
    assert client.get(f"/api/sessions/{sid}/status").status_code == 200


# -- uploads and logs -------------------------------------------------------------------


MARKER = "zanzibarquokka"


def docx_bytes(text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_uploads_keep_metadata_in_state_and_text_reaches_agents(
    client: FlaskClient, svc: Services
) -> None:
    big_text = f"Our notes mention {MARKER} as the deciding factor.\n" + "filler line\n" * 500
    r = client.post(
        "/api/sessions",
        data={
            "question": "Which option should we pick?",
            "files": [
                (io.BytesIO(big_text.encode()), "../../notes.md"),
                (io.BytesIO(b"a,b\n1,2\n"), "data.csv"),
                (io.BytesIO(b"a,b\n3,4\n"), "data.csv"),
                (io.BytesIO(docx_bytes(f"Docx says {MARKER}docx too.")), "brief.docx"),
            ],
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 200, r.json
    sid = r.json["session_id"]
    files = r.json["context_files"]
    assert [f["extension"] for f in files] == [".md", ".csv", ".csv", ".docx"]
    assert files[0]["filename"] == "notes.md"
    assert files[0]["size_bytes"] == len(big_text.encode())
    assert files[1]["filename"] != files[2]["filename"]  # no overwrite
    assert all(type(f["size_bytes"]) is int for f in files)

    folder = Path(svc.settings.sessions_dir) / sid / "uploaded_files"
    stored = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert {f["filename"] for f in files} <= set(stored)
    assert (folder / files[1]["filename"]).read_bytes() == b"a,b\n1,2\n"
    assert (folder / files[2]["filename"]).read_bytes() == b"a,b\n3,4\n"
    assert not (Path(svc.settings.sessions_dir) / "notes.md").exists()

    state = svc.states.load(sid).state
    assert MARKER not in json.dumps(state)
    assert len(state["ingested_data"]) == 4
    for item in state["ingested_data"]:
        assert "content" not in item or not item["content"]
        assert set(item["metadata"]) >= {"filename", "extension", "path", "size_bytes"}
    assert len(state["context_files"]) == 4

    put_council(client, sid)
    execute_and_wait(client, svc, sid)
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    prompts = ["\n".join(m["content"] for m in e["prompt"]) for e in logs if e["step"] == "execute"]
    assert len(prompts) == len(AGENTS)
    assert all(MARKER in p and f"{MARKER}docx" in p and "a,b" in p for p in prompts)
    # The offline answers are derived from the context as well as the question.
    responses = [e["response"] for e in logs if e["step"] == "execute"]
    assert all(r for r in responses)
    # Still no full text in the state after a run.
    assert "filler line\nfiller line" not in json.dumps(svc.states.load(sid).state)


def test_build_prompt_includes_uploaded_text(client: FlaskClient) -> None:
    sid = create(client, files=[(io.BytesIO(f"Context: {MARKER}.".encode()), "c.txt")])
    assert client.post(f"/api/sessions/{sid}/build_council").status_code == 200
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert [e["step"] for e in logs] == ["build"]
    assert MARKER in "\n".join(m["content"] for m in logs[0]["prompt"])


def test_one_log_entry_per_llm_call(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    put_council(client, sid)
    assert client.get(f"/api/sessions/{sid}/logs").json["logs"] == []
    execute_and_wait(client, svc, sid)
    review_and_wait(client, svc, sid)
    assert client.post(f"/api/sessions/{sid}/synthesize").status_code == 200
    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    assert [e["step"] for e in logs].count("execute") == len(AGENTS)
    assert [e["step"] for e in logs].count("review") == len(AGENTS)
    assert [e["step"] for e in logs][-1] == "synthesize"
    assert len(logs) == 2 * len(AGENTS) + 1
    for entry in logs:
        assert set(entry) >= {
            "step",
            "agent",
            "model",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "duration_ms",
            "error",
            "prompt",
            "response",
        }
        assert entry["error"] is None and entry["response"]
        assert entry["input_tokens"] > 0 and entry["output_tokens"] > 0
        assert entry["cost_usd"] == 0  # the offline provider is free
    agents = {e["agent"] for e in logs if e["step"] in ("execute", "review")}
    assert agents == {a["name"] for a in AGENTS}
    assert [e["agent"] for e in logs if e["step"] == "synthesize"] == ["chairman"]
    # The log file is where the summary says it is, one JSON line per call.
    log_file = Path(client.get(f"/api/sessions/{sid}/summary").json["log_file"])
    lines = [ln for ln in log_file.read_text().splitlines() if ln.strip()]
    assert len(lines) == len(logs)
    limited = client.get(f"/api/sessions/{sid}/logs?limit=2").json["logs"]
    assert len(limited) == 2


def test_offline_results_say_which_provider(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    council = client.post(f"/api/sessions/{sid}/build_council").json
    assert council["provider"] == "offline"
    execute_and_wait(client, svc, sid)
    results = client.get(f"/api/sessions/{sid}/results").json["execution_results"]
    assert {r["provider"] for r in results} == {"offline"}
    assert client.get(f"/api/sessions/{sid}/summary").json["provider"] == "offline"


def test_hard_delete_of_a_running_session_is_409(
    client: FlaskClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = create(client, files=[(io.BytesIO(b"private notes"), "p.txt")])
    put_council(client, sid)
    monkeypatch.setattr(svc.provider, "latency_ms", 400)
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
    folder = Path(svc.settings.sessions_dir) / sid
    body = assert_error(client.delete(f"/api/sessions/{sid}?hard=true"), 409, "conflict")
    assert body["current_status"] == "executing"
    assert client.get(f"/api/sessions/{sid}/status").status_code == 200
    assert svc.workflow.join(sid, 30)
    assert client.get(f"/api/sessions/{sid}/status").json["status"] == "execution_complete"
    # Once the run is over the hard delete goes through, and nothing writes the folder back.
    assert client.delete(f"/api/sessions/{sid}?hard=true").status_code == 200
    assert not folder.exists()
    assert_error(client.get(f"/api/sessions/{sid}/logs"), 410)
    assert not folder.exists()


def test_browser_empty_file_part_is_ignored(client: FlaskClient) -> None:
    # A browser form with no file chosen still sends a "files" part with an empty name.
    r = client.post(
        "/api/sessions",
        data={"question": "Q?", "files": [(io.BytesIO(b""), "")]},
        content_type="multipart/form-data",
    )
    assert r.status_code == 200, r.json
    assert r.json["context_files"] == []
