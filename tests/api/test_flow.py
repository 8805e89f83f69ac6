"""The whole council flow over HTTP, on both backends, with the offline provider."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from council_app.services import Services


def create(client: FlaskClient, question: str = "Should we adopt PostgreSQL?", **kw) -> str:
    data = {"question": question}
    data.update(kw)
    r = client.post("/api/sessions", data=data, content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    return r.json["session_id"]


def test_full_flow(client: FlaskClient, svc: Services) -> None:
    r = client.post(
        "/api/sessions",
        data={
            "question": "Which database should we use?",
            "files": [(io.BytesIO(b"We store JSON documents."), "notes.md")],
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 200  # the old server's clients check for 200, not 201
    sid = r.json["session_id"]
    assert r.headers["Location"] == f"/api/sessions/{sid}" and r.json["status"] == "idle"
    assert r.json["context_files"] == [
        {"filename": "notes.md", "extension": ".md", "size_bytes": 24}
    ]

    r = client.post(
        f"/api/sessions/{sid}/build_council", data="null", content_type="application/json"
    )
    assert r.status_code == 200, r.json
    agents = r.json["agents"]
    assert len(agents) >= 3

    r = client.post(f"/api/sessions/{sid}/execute?force=false")
    assert r.status_code == 200 and r.json == {"status": "accepted"}  # 200, as the old server
    assert r.headers["Location"] == f"/api/sessions/{sid}/status"
    assert svc.workflow.join(sid, 30)
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["status"] == "execution_complete"
    assert all(status["execution_status"][a["name"]] == "Done" for a in agents)
    assert status["progress"]["execution"] == 100

    r = client.post(f"/api/sessions/{sid}/execute")
    assert r.json == {"status": "already_executed"} and "Location" not in r.headers

    results = client.get(f"/api/sessions/{sid}/results").json
    assert [x["proposal_id"] for x in results["execution_results"]] == list(
        range(1, len(agents) + 1)
    )

    r = client.post(f"/api/sessions/{sid}/peer_review")
    assert r.status_code == 200
    assert svc.workflow.join(sid, 30)
    status = client.get(f"/api/sessions/{sid}/status").json
    assert status["status"] == "review_complete", status
    assert set(status["review_status"].values()) == {"Critique Complete"}
    reviews = client.get(f"/api/sessions/{sid}/reviews").json
    assert reviews["aggregated_scores"]
    for entry in reviews["aggregated_scores"].values():
        assert all(isinstance(s, int) for s in entry["scores"])

    r = client.post(f"/api/sessions/{sid}/synthesize")
    assert r.status_code == 200 and r.json["verdict"]

    summary = client.get(f"/api/sessions/{sid}/summary").json
    assert summary["status"] == "verdict_complete"
    assert summary["current_step"] == "complete"
    assert summary["question"] == "Which database should we use?"
    assert summary["execution_results"]["execution_results"]
    assert summary["chairman_verdict"] == r.json["verdict"]

    logs = client.get(f"/api/sessions/{sid}/logs").json["logs"]
    steps = [e["step"] for e in logs]
    assert steps.count("execute") == len(agents) and "synthesize" in steps

    listed = client.get("/api/sessions").json["sessions"]
    assert listed[0]["session_id"] == sid
    assert listed[0]["status"] == "verdict_complete"

    r = client.delete(f"/api/sessions/{sid}")
    assert r.status_code == 200
    assert client.get(f"/api/sessions/{sid}/summary").status_code == 410
