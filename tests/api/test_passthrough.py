"""/summary and /results hand large values through as JSON text: the same JSON as before.

``reference_summary`` and ``reference_results`` are the views as they were written before
the pass-through (load the whole document, pick keys, dump it again); every test compares
parsed values of both, on both backends, for documents a real run makes and for odd ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from council_app.api.sessions import STATUS_KEYS, SUMMARY_KEYS, _iso
from council_app.services import Services
from council_app.store.base import ProgressWrite
from council_app.store.decorator import unwrap
from tests.api.api_helpers import (
    built_app,
    create,
    execute_and_wait,
    put_council,
    review_and_wait,
    services_of,
)
from tests.conftest import postgres_settings
from tests.internals import flusher_of, store_of


def reference_summary(svc: Services, sid: str) -> dict[str, Any]:
    row = svc.states.meta(sid)
    assert row is not None
    stored = svc.states.load(sid)
    state = stored.state if stored else {}
    body = {key: state.get(key) for key in SUMMARY_KEYS}
    body["session_id"] = sid
    body["question"] = state.get("question") if isinstance(state.get("question"), str) else ""
    body["status"] = state.get("status") or row.status
    body["current_step"] = state.get("current_step") or row.current_step
    body["created_at"] = state.get("created_at") or _iso(row.created_at)
    body["updated_at"] = state.get("updated_at") or _iso(row.updated_at)
    for key in (*STATUS_KEYS, "build_error", "synthesis_error"):
        if key in state:
            body[key] = state[key]
    body["provider"] = svc.provider.name
    return orjson.loads(orjson.dumps(body))


def reference_results(svc: Services, sid: str) -> tuple[int, Any]:
    stored = svc.states.load(sid)
    state = stored.state if stored else {}
    if not state.get("execution_results"):
        return 404, None
    return 200, orjson.loads(orjson.dumps(state["execution_results"]))


def assert_same(client: FlaskClient, svc: Services, sid: str) -> dict[str, Any]:
    got = client.get(f"/api/sessions/{sid}/summary")
    assert got.status_code == 200, got.get_data(as_text=True)
    assert got.mimetype == "application/json"
    summary = orjson.loads(got.get_data())  # strict: the spliced text must be valid JSON
    assert summary == reference_summary(svc, sid)
    status, expected = reference_results(svc, sid)
    got = client.get(f"/api/sessions/{sid}/results")
    assert got.status_code == status, got.get_data(as_text=True)
    assert got.mimetype == "application/json"
    if status == 200:
        assert orjson.loads(got.get_data()) == expected
    return summary


def finished_session(client: FlaskClient, svc: Services) -> str:
    sid = create(client, 'Ünïcode question — should we "quote" it? 🚀')
    put_council(client, sid)
    execute_and_wait(client, svc, sid)
    review_and_wait(client, svc, sid)
    r = client.post(f"/api/sessions/{sid}/synthesize")
    assert r.status_code == 200, r.get_data(as_text=True)
    return sid


def test_every_step_of_a_real_session_reads_the_same(client: FlaskClient, svc: Services) -> None:
    sid = create(client)
    fresh = assert_same(client, svc, sid)
    assert fresh["execution_results"] is None and fresh["council_config"] is None
    put_council(client, sid)
    assert_same(client, svc, sid)
    execute_and_wait(client, svc, sid)
    assert_same(client, svc, sid)
    review_and_wait(client, svc, sid)
    assert_same(client, svc, sid)
    assert client.post(f"/api/sessions/{sid}/synthesize").status_code == 200
    done = assert_same(client, svc, sid)
    assert done["chairman_verdict"] and done["peer_reviews"] and done["aggregated_scores"]


def test_unicode_and_escapes_survive(client: FlaskClient, svc: Services) -> None:
    sid = finished_session(client, svc)

    def mutate(state: dict[str, Any]) -> None:
        state["chairman_verdict"] = 'line\nbreak, "quotes", back\\slash, \u00e9\u4e2d\U0001f680 \t'
        state["aggregated_scores"] = {"1": 0.1, "2": 1e-7, "3": 12345678901234, "4": -0.0}

    svc.states.update(sid, mutate)
    summary = assert_same(client, svc, sid)
    assert summary["chairman_verdict"].endswith("\U0001f680 \t")


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "", "current_step": None, "question": 42},  # falsy: the row's values
        {"execution_results": []},  # falsy results: 404
        {"execution_results": {}},
        {"execution_results": 0},
        {"execution_results": "text"},  # truthy, not a list: passed through
        {"council_config": None, "peer_reviews": None},  # null is kept
        {"execution_error": None, "build_error": "boom", "synthesis_error": {"x": [1]}},
        {"created_at": "", "updated_at": None},
    ],
)
def test_odd_documents_read_the_same(
    client: FlaskClient, svc: Services, changes: dict[str, Any]
) -> None:
    sid = finished_session(client, svc)
    svc.states.update(sid, lambda state: state.update(changes))
    assert_same(client, svc, sid)


def test_missing_keys_read_the_same(client: FlaskClient, svc: Services) -> None:
    sid = finished_session(client, svc)

    def drop(state: dict[str, Any]) -> None:
        for key in ("council_config", "peer_reviews", "chairman_verdict", "tokens", "log_file"):
            state.pop(key, None)

    svc.states.update(sid, drop)
    summary = assert_same(client, svc, sid)
    assert summary["chairman_verdict"] is None and summary["tokens"] is None


def test_hot_column_and_pending_progress_are_overlaid(client: FlaskClient, svc: Services) -> None:
    sid = finished_session(client, svc)
    stored = svc.states.load(sid)
    assert stored is not None
    # Flushed progress newer than the document (the hot column wins for its keys)...
    rejected = store_of(svc).write_progress(
        [
            ProgressWrite(
                sid,
                {"status": "reviewing", "tokens": {"total_tokens": 7}, "review_error": "late"},
                stored.revision + 1_000_000,
            )
        ]
    )
    assert rejected == []
    summary = assert_same(client, svc, sid)
    assert summary["status"] == "reviewing" and summary["review_error"] == "late"
    assert summary["tokens"]["total_tokens"] == 7
    # ...and progress this process accepted but has not written yet.
    flusher_of(svc).stop()  # keep it pending: no flush thread
    svc.states.progress(sid, {"execution_status": {"Economist": "Again"}, "progress": {"x": 1}})
    assert flusher_of(svc).peek(sid)
    summary = assert_same(client, svc, sid)
    assert summary["execution_status"]["Economist"] == "Again"


def test_pass_through_answers_404_and_410_like_before(client: FlaskClient, svc: Services) -> None:
    sid = finished_session(client, svc)
    other = {"X-User-Id": "mallory@example.com"}
    for path in ("summary", "results"):
        assert client.get(f"/api/sessions/{sid}/{path}", headers=other).status_code in (401, 404)
        assert client.get(f"/api/sessions/session_20990101_000000_ffffff/{path}").status_code == 404
    assert client.delete(f"/api/sessions/{sid}").status_code == 200
    for path in ("summary", "results"):
        assert client.get(f"/api/sessions/{sid}/{path}").status_code == 410


def test_postgres_cache_follows_every_change_of_the_row(pg_url: str, tmp_path: Path) -> None:
    with built_app(postgres_settings(pg_url, tmp_path)) as app:
        client, svc = app.test_client(), services_of(app)
        sid = finished_session(client, svc)
        views = unwrap(store_of(svc))._views  # type: ignore[attr-defined]
        first = assert_same(client, svc, sid)
        hits = views.hits
        assert client.get(f"/api/sessions/{sid}/summary").json == first
        assert views.hits == hits + 1  # served from the cache
        # Changed behind the app's back, same revision and updated_at: a new row version.
        engine = sa.create_engine(pg_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE session_state SET state = jsonb_set(state, "
                        "'{chairman_verdict}', '\"changed\"') WHERE session_id = :sid"
                    ),
                    {"sid": sid},
                )
        finally:
            engine.dispose()
        assert assert_same(client, svc, sid)["chairman_verdict"] == "changed"
        # Progress is read fresh every time, never from the cache.
        store_of(svc).write_progress([ProgressWrite(sid, {"status": "again"}, 2**62)])
        assert client.get(f"/api/sessions/{sid}/summary").json["status"] == "again"
