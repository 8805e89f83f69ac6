"""Per-user daily budgets: spend recorded per priced LLM call, enforced across app instances
through the database, refused with 429 until UTC midnight; /api/me shows the figure."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from council_app.budget import BudgetExceeded, SpendLedger
from council_app.session_ids import session_dir
from council_app.settings import Settings
from council_app.store import StateStore, build_store
from council_app.store.schema import metadata, user_spend
from council_app.workflow.session_log import read_log_entries
from tests.api.api_helpers import (
    assert_error,
    execute_and_wait,
    fake_llm_app,
    put_council,
    review_and_wait,
)
from tests.conftest import postgres_settings, sqlite_settings
from tests.internals import store_of

ALICE = {"X-User-Id": "alice@corp.example"}
BOB = {"X-User-Id": "bob@corp.example"}
TINY_BUDGET = 0.0001  # USD: one priced call of the fake LLM spends it all


@pytest.fixture
def store(backend_settings: Settings) -> StateStore:
    s = build_store(backend_settings)
    s.create_schema()
    yield s
    s.close()


# -- the ledger table ----------------------------------------------------------------------


def test_concurrent_increments_all_count(store: StateStore) -> None:
    day = date(2026, 12, 3)
    threads = [
        threading.Thread(
            target=lambda: [store.add_spend("alice", day, 0.25) for _ in range(25)],
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.spend_on("alice", day) == pytest.approx(8 * 25 * 0.25)
    assert store.spend_on("alice", day + timedelta(days=1)) == 0.0
    assert store.spend_on("bob", day) == 0.0


def test_a_new_utc_day_starts_from_zero(store: StateStore) -> None:
    now = [datetime(2026, 12, 3, 23, 59, 30, tzinfo=UTC)]
    ledger = SpendLedger(store, 1.0, clock=lambda: now[0])
    ledger.record("alice", 0.6)
    ledger.record("alice", 0.5)
    with pytest.raises(BudgetExceeded) as info:
        ledger.check("alice")
    assert info.value.resets_at == datetime(2026, 12, 4, tzinfo=UTC)
    assert ledger.retry_after_s(info.value) == 30
    assert "resets at 2026-12-04T00:00:00Z" in str(info.value)
    ledger.check("bob")
    now[0] = datetime(2026, 12, 4, 0, 0, 1, tzinfo=UTC)
    ledger.check("alice")
    assert ledger.spent_today("alice") == 0.0
    assert store.spend_on("alice", date(2026, 12, 3)) == pytest.approx(1.1)


def test_spend_waits_in_memory_while_the_table_refuses_writes(tmp_path: Path) -> None:
    store = build_store(sqlite_settings(tmp_path))
    store.create_schema()
    ledger = SpendLedger(store, None)
    engine = store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        user_spend.drop(conn)
    ledger.record("alice", 0.5)  # refused by the database: kept, not raised
    ledger.record("alice", 0.25)
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[user_spend])
    assert ledger.flush()
    assert ledger.spent_today("alice") == pytest.approx(0.75)
    assert store.spend_on("alice", datetime.now(UTC).date()) == pytest.approx(0.75)
    store.close()


# -- over HTTP, two app instances on one PostgreSQL ----------------------------------------


def logged_cost(app: Flask, sid: str) -> float:
    folder = session_dir(app.extensions["council"].settings.sessions_dir, sid)
    return sum(e.get("cost_usd") or 0.0 for e in read_log_entries(folder, 100_000))


def new_session(client: FlaskClient, headers: dict[str, str]) -> str:
    r = client.post(
        "/api/sessions",
        data={"question": "Should we adopt PostgreSQL?"},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert r.status_code in (200, 201), r.get_data(as_text=True)
    return r.json["session_id"]


def test_budget_is_enforced_across_two_app_instances(pg_url: str, tmp_path: Path) -> None:
    settings = postgres_settings(pg_url, tmp_path, user_daily_budget_usd=TINY_BUDGET)
    with fake_llm_app(settings) as (app_a, fake), fake_llm_app(settings) as (app_b, _fake_b):
        a, b = app_a.test_client(), app_b.test_client()
        me = a.get("/api/me", headers=ALICE).json
        assert me["user"] == "alice@corp.example"
        assert me["spent_today_usd"] == 0.0 and me["daily_budget_usd"] == TINY_BUDGET

        s1 = new_session(a, ALICE)
        r = a.post(f"/api/sessions/{s1}/build_council", headers=ALICE)
        assert r.status_code == 200, r.get_data(as_text=True)
        spent = logged_cost(app_a, s1)
        assert spent >= TINY_BUDGET
        calls_before = len(fake.requests) + len(_fake_b.requests)

        # Instance B sees what A recorded, through the database.
        s2 = new_session(b, ALICE)
        r = b.post(f"/api/sessions/{s2}/build_council", headers=ALICE)
        body = assert_error(r, 429, "budget_exceeded")
        assert "resets at" in body["message"] and "UTC midnight" in body["message"]
        assert 1 <= int(r.headers["Retry-After"]) <= 86_400
        assert body["spent_today_usd"] == pytest.approx(spent)
        for path in ("execute", "peer_review", "synthesize"):
            assert_error(a.post(f"/api/sessions/{s1}/{path}", headers=ALICE), 429)
        # Nothing was sent to the LLM for the refused steps.
        assert len(fake.requests) + len(_fake_b.requests) == calls_before

        # What went in (the calls' logged costs) is what /api/me shows, on both instances.
        for client in (a, b):
            me = client.get("/api/me", headers=ALICE).json
            assert me["spent_today_usd"] == pytest.approx(spent)
            assert me["remaining_usd"] == 0.0
            assert me["resets_at"].endswith("T00:00:00Z")

        # Another user has a budget of their own; reads stay allowed.
        s3 = new_session(b, BOB)
        assert b.post(f"/api/sessions/{s3}/build_council", headers=BOB).status_code == 200
        assert a.get(f"/api/sessions/{s1}/summary", headers=ALICE).status_code == 200
        with store_of(app_a.extensions["council"]).engine.connect() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                sa.select(user_spend.c.user_id, user_spend.c.cost_usd, user_spend.c.calls)
            ).all()
        by_user = {r.user_id: (r.cost_usd, r.calls) for r in rows}
        assert by_user["alice@corp.example"] == (pytest.approx(spent), 1)
        assert by_user["bob@corp.example"][1] == 1


def test_every_paid_call_of_a_whole_flow_is_counted(pg_url: str, tmp_path: Path) -> None:
    """No budget: nothing refused, and what /api/me shows is exactly what the calls cost
    (build, every agent's answer and review in background runs, the verdict)."""
    with fake_llm_app(postgres_settings(pg_url, tmp_path)) as (app, fake):
        client, svc = app.test_client(), app.extensions["council"]
        sids = [new_session(client, {}) for _ in range(2)]
        for sid in sids:
            assert client.post(f"/api/sessions/{sid}/build_council").status_code == 200
        put_council(client, sids[0])
        execute_and_wait(client, svc, sids[0])
        review_and_wait(client, svc, sids[0])
        assert client.post(f"/api/sessions/{sids[0]}/synthesize").status_code == 200
        me = client.get("/api/me").json
        assert me["daily_budget_usd"] is None and me["remaining_usd"] is None
        logged = sum(logged_cost(app, sid) for sid in sids)
        assert logged > 0
        assert me["spent_today_usd"] == pytest.approx(logged)
        with store_of(svc).engine.connect() as conn:  # type: ignore[attr-defined]
            calls = conn.execute(sa.select(user_spend.c.calls)).scalar()
        assert calls == len(fake.requests)  # one ledger increment per priced call
