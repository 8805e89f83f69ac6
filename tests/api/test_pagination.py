"""GET /api/sessions pages with an opaque cursor (keyset), keeps offset, filters with q=.

Counted: walking every page yields each of the user's live sessions exactly once, in
(created_at desc, id desc) order, on both backends, with ties in created_at, with
sessions created and deleted while paging, and with sessions that exist only as legacy
state.json files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from council_app.services import Services
from council_app.session_ids import new_session_id
from council_app.settings import Settings
from council_app.store import legacy_files
from council_app.store.base import SessionRow
from tests.api.api_helpers import assert_error, built_app, services_of

ALICE = {"X-User-Id": "alice"}
BOB = {"X-User-Id": "bob"}
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def add(svc: Services, user: str, created: datetime, question: str = "q") -> str:
    sid = new_session_id(created)
    state = {
        "session_id": sid,
        "user_id": user,
        "question": question,
        "created_at": created.isoformat(),
        "status": "idle",
        "current_step": "input",
    }
    row = SessionRow(sid, user, question, "idle", "input", None, None, created, created)
    svc.states.create(row, state)
    return sid


def expected_order(svc: Services, sids: list[str]) -> list[str]:
    rows = [svc.states.meta(s) for s in sids]
    live = [r for r in rows if r is not None and r.deleted_at is None]
    live.sort(key=lambda r: (r.created_at, r.session_id), reverse=True)
    return [r.session_id for r in live]


def walk(client: FlaskClient, limit: int, headers: dict[str, str], extra: str = "") -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        url = f"/api/sessions?limit={limit}{extra}" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        body = r.json
        assert len(body["sessions"]) <= limit
        seen += [s["session_id"] for s in body["sessions"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        assert len(body["sessions"]) == limit  # a cursor only when there may be more
    raise AssertionError("pagination did not end")


def test_cursor_walk_yields_each_session_once_in_order(client: FlaskClient, svc: Services) -> None:
    mine = []
    for i in range(23):
        # Every third one shares its created_at with the previous: ties break on id.
        mine.append(add(svc, "alice", T0 + timedelta(seconds=i - i % 3)))
    theirs = [add(svc, "bob", T0 + timedelta(seconds=i)) for i in range(5)]
    for limit in (1, 4, 7, 23, 50):
        assert walk(client, limit, ALICE) == expected_order(svc, mine)
    assert walk(client, 2, BOB) == expected_order(svc, theirs)
    # Offset pages (old clients) match the cursor pages.
    by_offset = []
    for offset in range(0, 23, 5):
        page = client.get(f"/api/sessions?limit=5&offset={offset}", headers=ALICE).json
        by_offset += [s["session_id"] for s in page["sessions"]]
    assert by_offset == expected_order(svc, mine)


def test_sessions_created_and_deleted_while_paging(client: FlaskClient, svc: Services) -> None:
    sids = [add(svc, "alice", T0 + timedelta(minutes=i)) for i in range(10)]
    first = client.get("/api/sessions?limit=4", headers=ALICE).json
    assert [s["session_id"] for s in first["sessions"]] == expected_order(svc, sids)[:4]
    newer = add(svc, "alice", T0 + timedelta(days=1))  # lands before the cursor: not shown
    victim = expected_order(svc, sids)[6]
    assert client.delete(f"/api/sessions/{victim}", headers=ALICE).status_code == 200
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(f"/api/sessions?limit=4&cursor={cursor}", headers=ALICE).json
        rest += [s["session_id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
    remaining = [s for s in expected_order(svc, sids)[4:] if s != victim]
    assert rest == remaining and newer not in rest and victim not in rest


def test_legacy_file_sessions_are_paged_too(backend_settings: Settings) -> None:
    files = []
    for i in range(5):  # sessions that exist only as state.json (not migrated)
        created = T0 + timedelta(hours=i, minutes=30)
        sid = new_session_id(created)
        state: dict[str, Any] = {
            "session_id": sid,
            "user_id": "alice",
            "question": f"legacy {i}",
            "created_at": created.isoformat(),
            "updated_at": created.isoformat(),
        }
        legacy_files.write_json_atomic(
            legacy_files.state_path(backend_settings.sessions_dir, sid), state
        )
        files.append(sid)
    with built_app(backend_settings) as app:
        client, svc = app.test_client(), services_of(app)
        in_db = [add(svc, "alice", T0 + timedelta(hours=i)) for i in range(6)]
        everything = walk(client, 3, ALICE)
        assert sorted(everything) == sorted(in_db + files)
        assert len(everything) == len(set(everything))
        created = [svc.states.meta(s) for s in everything]
        keys = [(r.created_at, r.session_id) for r in created if r is not None]
        assert keys == sorted(keys, reverse=True)
        assert walk(client, 2, ALICE, "&q=LEGACY") == [s for s in everything if s in files]


def test_search_is_a_case_insensitive_substring(client: FlaskClient, svc: Services) -> None:
    a = add(svc, "alice", T0, "Should we adopt PostgreSQL?")
    b = add(svc, "alice", T0 + timedelta(seconds=1), "Move billing to postgres now")
    c = add(svc, "alice", T0 + timedelta(seconds=2), "100% sure_thing")
    add(svc, "alice", T0 + timedelta(seconds=3), "100 percent surely")
    add(svc, "bob", T0, "postgres for bob")
    assert walk(client, 1, ALICE, "&q=postgres") == [b, a]
    assert walk(client, 10, ALICE, "&q=%25%20sure_") == [c]  # % and _ are literal
    assert walk(client, 10, ALICE, "&q=nothing-like-this") == []
    assert len(walk(client, 10, ALICE, "&q=")) == 4  # empty: no filter


@pytest.mark.parametrize(
    "query",
    [
        "cursor=not-a-cursor",
        "cursor=%C3%A9t%C3%A9",  # not ASCII
        "cursor=W10",  # []
        "cursor=WyJ4IiwgInkiXQ",  # ["x", "y"]: no date
        "cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgInMiXQ",  # a date without a zone
        "cursor=" + "A" * 500,
        "cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgInMiXQ&offset=3",  # both
        "q=" + "x" * 201,
    ],
)
def test_bad_cursor_or_query_is_a_json_400(client: FlaskClient, query: str) -> None:
    assert_error(client.get(f"/api/sessions?{query}", headers=ALICE), 400)


def test_a_valid_cursor_from_elsewhere_is_just_a_position(client: FlaskClient) -> None:
    # ["2026-01-01T00:00:00+00:00", "s"]: well-formed, names no session; pages after it.
    r = client.get(
        "/api/sessions?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgInMiXQ", headers=ALICE
    )
    assert r.status_code == 200 and r.json["sessions"] == [] and r.json["next_cursor"] is None
