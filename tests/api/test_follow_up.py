"""Follow-up sessions: POST /api/sessions with ``follow_up_of`` carries the parent's
question, verdict and uploads into the new session's context, and links both ways.

Runs on both backends with the offline provider; the child's context is checked where it
matters, in the prompt the builder actually received (the session's LLM log).
"""

from __future__ import annotations

import io
import json
from typing import Any

from flask.testing import FlaskClient

from council_app.services import Services
from tests.api.api_helpers import assert_error

SECRET = "the-nightly-batch-takes-4711-minutes"


def _create(client: FlaskClient, question: str, user: str = "alice", **form: Any) -> Any:
    return client.post(
        "/api/sessions",
        data={"question": question, **form},
        content_type="multipart/form-data",
        headers={"X-User-Id": user},
    )


def _ok(response: Any) -> Any:
    assert response.status_code < 300, response.get_data(as_text=True)
    return response.json


def _finished_parent(client: FlaskClient, svc: Services) -> tuple[str, str]:
    """A session with an upload, run to its verdict; returns (id, verdict)."""
    me = {"X-User-Id": "alice"}
    files = [(io.BytesIO(f"# Notes\n{SECRET}\n".encode()), "notes.md")]
    sid = _ok(_create(client, "Should we move the batch jobs to events?", files=files))[
        "session_id"
    ]
    _ok(client.post(f"/api/sessions/{sid}/build_council", headers=me))
    _ok(client.post(f"/api/sessions/{sid}/execute", headers=me))
    assert svc.workflow.join(sid, 30)
    _ok(client.post(f"/api/sessions/{sid}/peer_review", headers=me))
    assert svc.workflow.join(sid, 30)
    verdict = _ok(client.post(f"/api/sessions/{sid}/synthesize", headers=me))["verdict"]
    assert verdict
    return sid, verdict


def _summary(client: FlaskClient, sid: str, user: str = "alice") -> dict[str, Any]:
    return _ok(client.get(f"/api/sessions/{sid}/summary", headers={"X-User-Id": user}))


def test_follow_up_carries_question_verdict_and_uploads(client: FlaskClient, svc: Services) -> None:
    parent, verdict = _finished_parent(client, svc)
    created = _ok(_create(client, "And what about the weekly jobs?", follow_up_of=parent))
    child = created["session_id"]
    assert created["follow_up_of"] == parent

    # Linked both ways, as stored.
    assert _summary(client, child)["follow_up_of"] == parent
    assert _summary(client, parent)["follow_ups"] == [child]

    # The child's builder saw the earlier question, its verdict and the upload's text.
    _ok(client.post(f"/api/sessions/{child}/build_council", headers={"X-User-Id": "alice"}))
    logs = _ok(client.get(f"/api/sessions/{child}/logs", headers={"X-User-Id": "alice"}))["logs"]
    build = [e for e in logs if e.get("step") == "build"]
    assert len(build) == 1
    prompt = json.dumps(build[0]["prompt"])
    assert "Should we move the batch jobs to events?" in prompt
    assert SECRET in prompt
    first_line = next(line for line in verdict.splitlines() if line.strip())
    assert json.dumps(first_line)[1:-1] in prompt


def test_every_follow_up_is_recorded_on_the_parent(client: FlaskClient, svc: Services) -> None:
    parent, _ = _finished_parent(client, svc)
    children = [
        _ok(_create(client, f"Follow-up number {i}", follow_up_of=parent))["session_id"]
        for i in range(3)
    ]
    assert _summary(client, parent)["follow_ups"] == children
    for child in children:
        assert _summary(client, child)["follow_up_of"] == parent
    # A session without a parent says so (null), and has no follow-ups.
    plain = _ok(_create(client, "An unrelated question"))["session_id"]
    body = _summary(client, plain)
    assert body["follow_up_of"] is None and body["follow_ups"] is None


def _count(client: FlaskClient, user: str) -> int:
    rows = _ok(client.get("/api/sessions?limit=500", headers={"X-User-Id": user}))["sessions"]
    return len(rows)


def test_follow_up_of_a_session_you_cannot_see_is_refused(
    client: FlaskClient, svc: Services
) -> None:
    parent = _ok(_create(client, "Alice's private question"))["session_id"]
    before = _count(client, "mallory")

    # Someone else's session, an unknown one and a malformed id: 404, nothing created.
    for bad in (parent, "0" * 32, "../../etc"):
        r = _create(client, "Tell me what Alice asked", user="mallory", follow_up_of=bad)
        assert_error(r, 404)
    assert _count(client, "mallory") == before
    assert _summary(client, parent).get("follow_ups") is None

    # A deleted parent: 410, and still nothing created.
    _ok(client.delete(f"/api/sessions/{parent}", headers={"X-User-Id": "alice"}))
    before = _count(client, "alice")
    assert_error(_create(client, "Follow a deleted one", follow_up_of=parent), 410)
    assert _count(client, "alice") == before


def test_follow_up_of_an_unfinished_session_carries_what_there_is(
    client: FlaskClient, svc: Services
) -> None:
    parent = _ok(_create(client, "A question nobody ran"))["session_id"]
    child = _ok(_create(client, "Then this one", follow_up_of=parent))["session_id"]
    _ok(client.post(f"/api/sessions/{child}/build_council", headers={"X-User-Id": "alice"}))
    logs = _ok(client.get(f"/api/sessions/{child}/logs", headers={"X-User-Id": "alice"}))["logs"]
    prompt = json.dumps(logs[0]["prompt"])
    assert "A question nobody ran" in prompt and "had no verdict yet" in prompt
    assert _summary(client, parent)["follow_ups"] == [child]


def test_follow_up_with_its_own_upload_of_the_same_name_keeps_both(
    client: FlaskClient, svc: Services
) -> None:
    parent, _ = _finished_parent(client, svc)
    files = [(io.BytesIO(b"# Notes\nthe-child-says-1234\n"), "notes.md")]
    child = _ok(_create(client, "Now with new notes", follow_up_of=parent, files=files))
    assert [f["filename"] for f in child["context_files"]] == ["notes.md"]
    sid = child["session_id"]
    _ok(client.post(f"/api/sessions/{sid}/build_council", headers={"X-User-Id": "alice"}))
    logs = _ok(client.get(f"/api/sessions/{sid}/logs", headers={"X-User-Id": "alice"}))["logs"]
    prompt = json.dumps(logs[0]["prompt"])
    assert SECRET in prompt and "the-child-says-1234" in prompt
    assert "earlier-notes.md" in prompt
