"""/metrics in one process: per-route request and error counts, latency, flusher, runs."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from .conftest import create_session

STATUS = "/api/sessions/<session_id>/status"
SUMMARY = "/api/sessions/<session_id>/summary"
EXECUTE = "/api/sessions/<session_id>/execute"
REVIEW = "/api/sessions/<session_id>/peer_review"


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics keyed by (name, sorted labels)."""
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_errors_latency_flusher_and_runs_are_counted(
    app: Flask, client: FlaskClient
) -> None:
    before = scrape(client)
    sid = create_session(client)
    svc = app.extensions["council"]
    assert client.post(f"/api/sessions/{sid}/build_council").status_code == 200
    assert client.post(f"/api/sessions/{sid}/execute").status_code == 200
    assert svc.workflow.join(sid, 30)
    assert client.post(f"/api/sessions/{sid}/peer_review").status_code == 200
    assert svc.workflow.join(sid, 30)
    for _ in range(3):
        assert client.get(f"/api/sessions/{sid}/status").status_code == 200
    assert client.get(f"/api/sessions/{sid}/summary").status_code == 200
    assert client.get("/api/sessions/nope-not-a-session/status").status_code == 404
    assert client.get("/no/such/route").status_code == 404
    assert (
        client.post(f"/api/sessions/{sid}/progress", json={"progress": {"x": 1}}).status_code == 202
    )
    assert svc.states.flush(5)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "council_http_requests_total"
    assert delta(requests, endpoint=STATUS, method="GET", status="200") == 3
    assert delta(requests, endpoint=STATUS, method="GET", status="404") == 1
    assert delta(requests, endpoint=SUMMARY, method="GET", status="200") == 1
    assert delta(requests, endpoint=EXECUTE, method="POST", status="200") == 1
    assert delta(requests, endpoint=REVIEW, method="POST", status="200") == 1
    assert delta(requests, endpoint="<unmatched>", method="GET", status="404") == 1
    # Raw paths (session ids) never become labels.
    assert not [k for k in after if sid in str(k)]
    errors = "council_http_errors_total"
    assert delta(errors, endpoint=STATUS, method="GET", status="404") == 1
    assert delta(errors, endpoint=STATUS, method="GET", status="200") == 0
    latency = "council_http_request_duration_seconds_count"
    assert delta(latency, endpoint=STATUS, method="GET") == 4
    assert (
        value(after, "council_http_request_duration_seconds_sum", endpoint=STATUS, method="GET") > 0
    )

    assert delta("council_flushes_total", outcome="ok") >= 1
    assert delta("council_flush_duration_seconds_count") >= 1
    assert delta("council_flush_rows_sum") >= 1
    assert value(after, "council_flusher_pending_sessions") == 0
    assert value(after, "council_runs_in_progress", kind="execute") == 0
    assert value(after, "council_runs_in_progress", kind="review") == 0
    assert (("council_flush_failures_total", ()) in after) and (
        ("council_stale_writes_rejected_total", ()) in after
    )


def test_hooks_count_failures_runs_and_stale_rejections(app: Flask, client: FlaskClient) -> None:
    from council_app import metrics

    before = scrape(client)
    metrics.observe_flush(0, 0.01, False)
    metrics.observe_run("execute", 1)
    svc = app.extensions["council"]
    svc.states.stats.stale_rejected += 2  # as a flush that found newer revisions would
    metrics.observe_flush(3, 0.002, True)
    during = scrape(client)
    metrics.observe_run("execute", -1)
    after = scrape(client)
    assert (
        value(during, "council_flush_failures_total")
        - value(before, "council_flush_failures_total")
        == 1
    )
    assert (
        value(during, "council_flushes_total", outcome="failed")
        - value(before, "council_flushes_total", outcome="failed")
        == 1
    )
    assert (
        value(during, "council_stale_writes_rejected_total")
        - value(before, "council_stale_writes_rejected_total")
        == 2
    )
    assert (
        value(during, "council_runs_in_progress", kind="execute")
        == value(before, "council_runs_in_progress", kind="execute") + 1
    )
    assert value(after, "council_runs_in_progress", kind="execute") == value(
        before, "council_runs_in_progress", kind="execute"
    )
