"""The runbook's rollback, word for word: work on the embedded default, migrate to
PostgreSQL, work there, then unset DATABASE_URL and restart on the same SESSIONS_DIR.

Every session is then listed for its owner with its latest completed step, deleted ones
stay deleted, and the next write adopts a session into the embedded backend.  Counted:
sessions and steps per owner before and after, deletions, and the verdict's text.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from council_app.migration.cli import main as migrate
from council_app.settings import DEV_USER, Settings
from council_app.store.legacy_files import write_json_atomic
from tests.api.api_helpers import AGENTS, built_app, services_of
from tests.conftest import postgres_settings, sqlite_settings

OWNERS = ("alice", "bob", "carol", DEV_USER)
LEGACY = "session_20240105_090000_0f0f0f"  # an old file without owner, never migrated


def client_for(app: Flask, user: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_X_USER_ID"] = user
    return client


def new_session(client: FlaskClient, question: str) -> str:
    r = client.post(
        "/api/sessions", data={"question": question}, content_type="multipart/form-data"
    )
    assert r.status_code == 200, r.json
    return r.json["session_id"]


def step(app: Flask, client: FlaskClient, sid: str, name: str) -> None:
    if name == "council":
        r = client.put(f"/api/sessions/{sid}/council", json={"agents": AGENTS})
    else:
        r = client.post(f"/api/sessions/{sid}/{name}")
    assert r.status_code == 200, (name, r.json)
    if name in ("execute", "peer_review"):
        assert r.json == {"status": "accepted"}
        assert services_of(app).workflow.join(sid, 30)


def listing(app: Flask) -> dict[str, list[tuple[str, str, str]]]:
    """Per owner: (session, status, current_step), newest first."""
    out = {}
    for user in OWNERS:
        r = client_for(app, user).get("/api/sessions?limit=100")
        assert r.status_code == 200, r.json
        out[user] = [(s["session_id"], s["status"], s["current_step"]) for s in r.json["sessions"]]
    return out


def contents(app: Flask, owners: dict[str, list[tuple[str, str, str]]]) -> dict[str, Any]:
    """What a client rebuilds a page from, per listed session."""
    out = {}
    for user, rows in owners.items():
        client = client_for(app, user)
        for sid, _, _ in rows:
            s = client.get(f"/api/sessions/{sid}/summary").json
            results = (s.get("execution_results") or {}).get("execution_results") or []
            out[sid] = (
                s["status"],
                s["current_step"],
                len(results),
                len(s.get("peer_reviews") or []),
                s.get("chairman_verdict"),
                (s.get("council_config") or {}).get("agents") is not None,
            )
    return out


@pytest.mark.slow
def test_rollback_after_postgres_work_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    embedded: Settings = sqlite_settings(tmp_path)
    on_pg: Settings = postgres_settings(pg_url, tmp_path)  # the same SESSIONS_DIR
    assert embedded.sessions_dir == on_pg.sessions_dir

    # 1. The embedded default, before the move.
    with built_app(embedded) as app:
        alice, bob = client_for(app, "alice"), client_for(app, "bob")
        e1 = new_session(alice, "Before the move: executed")
        for name in ("council", "execute"):
            step(app, alice, e1, name)
        e2 = new_session(bob, "Before the move: untouched")
        e3 = new_session(bob, "Before the move: deleted on PostgreSQL")

    # 2. migrate_state.py, as the runbook says.
    out, err = io.StringIO(), io.StringIO()
    code = migrate(
        ["--sessions-dir", str(on_pg.sessions_dir), "--sqlite-url", embedded.database_url],
        {"DATABASE_URL": pg_url},
        stdout=out,
        stderr=err,
    )
    assert code == 0, out.getvalue() + err.getvalue()
    write_json_atomic(
        on_pg.sessions_dir / LEGACY / "state.json",
        {"session_id": LEGACY, "question": "An old file", "created_at": "2024-01-05T09:00:00"},
    )

    # 3. Work on PostgreSQL (the mirror is on by default).
    with built_app(on_pg) as app:
        alice, bob, carol = (client_for(app, u) for u in ("alice", "bob", "carol"))
        dev = client_for(app, DEV_USER)
        step(app, alice, e1, "peer_review")  # a migrated session moves on
        p1 = new_session(alice, "On PostgreSQL: all the way")
        for name in ("council", "execute", "peer_review", "synthesize"):
            step(app, alice, p1, name)
        p2 = new_session(bob, "On PostgreSQL: council only")
        step(app, bob, p2, "council")
        p3 = new_session(bob, "On PostgreSQL: soft-deleted")
        for name in ("council", "execute"):
            step(app, bob, p3, name)
        assert bob.delete(f"/api/sessions/{p3}").status_code == 200
        assert bob.delete(f"/api/sessions/{e3}").status_code == 200  # SQLite still has it live
        p4 = new_session(carol, "On PostgreSQL: hard-deleted")
        assert carol.delete(f"/api/sessions/{p4}?hard=true").status_code == 200
        step(app, dev, LEGACY, "council")  # a file-only session adopted by a write
        # A progress flush after the last step: the database has it, the files need not.
        services_of(app).states.progress(p1, {"progress": {"after_the_verdict": 1}})
        assert services_of(app).states.flush()
        before = listing(app)
        before_contents = contents(app, before)
        assert bob.get(f"/api/sessions/{p3}/status").status_code == 410
        assert carol.get(f"/api/sessions/{p4}/status").status_code == 410

    expected = {
        "alice": {p1: "verdict_complete", e1: "review_complete"},
        "bob": {p2: "ready_to_execute", e2: "idle"},
        "carol": {},
        DEV_USER: {LEGACY: "ready_to_execute"},
    }
    assert {u: {sid: status for sid, status, _ in rows} for u, rows in before.items()} == expected

    # 4. Rollback: DATABASE_URL unset, restart, same folder and the same old SQLite file.
    with built_app(embedded) as app:
        after = listing(app)
        assert after == before  # every session, its owner, its latest step, in order
        assert sum(len(v) for v in after.values()) == 5
        assert contents(app, after) == before_contents  # results, reviews, verdict
        bob, carol = client_for(app, "bob"), client_for(app, "carol")
        assert bob.get(f"/api/sessions/{p3}/status").status_code == 410  # still deleted
        assert bob.get(f"/api/sessions/{e3}/status").status_code == 410  # over its SQLite row
        assert carol.get(f"/api/sessions/{p4}/status").status_code in (404, 410)
        # The next write adopts a PostgreSQL-born session into the embedded backend.
        step(app, bob, p2, "execute")
        rows = listing(app)["bob"]
        assert [(sid, status) for sid, status, _ in rows] == [
            (p2, "execution_complete"),
            (e2, "idle"),
        ]
