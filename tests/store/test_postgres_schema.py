"""PostgreSQL-only schema facts: concurrent creation, fillfactor, the optional GIN index."""

from __future__ import annotations

import sqlalchemy as sa

from council_app.store.postgres import PostgresStore
from council_app.store.schema import GIN_INDEX_NAME, SESSION_STATE_FILLFACTOR
from tests.concurrency import create_schemas_together
from tests.conftest import postgres_settings


def _index_exists(store: PostgresStore) -> bool:
    """After the background job of the last create_schema (it builds concurrently)."""
    if store.gin_index_job is not None:
        store.gin_index_job.join(60)
    with store.engine.connect() as conn:
        return (
            conn.execute(
                sa.text("SELECT to_regclass(:name) IS NOT NULL"),
                {"name": GIN_INDEX_NAME},
            ).scalar()
            is True
        )


def test_schema_created_once_by_racing_workers(pg_url, tmp_path) -> None:
    stores = [PostgresStore(postgres_settings(pg_url, tmp_path)) for _ in range(4)]
    assert create_schemas_together(stores) == []
    with stores[0].engine.connect() as conn:
        options = conn.execute(
            sa.text("SELECT reloptions FROM pg_class WHERE oid = 'session_state'::regclass")
        ).scalar()
    assert f"fillfactor={SESSION_STATE_FILLFACTOR}" in options
    assert _index_exists(stores[0])  # on by default (the runbook's index)
    for s in stores:
        s.close()


def test_gin_index_follows_the_setting(pg_url, tmp_path) -> None:
    on = PostgresStore(postgres_settings(pg_url, tmp_path, state_gin_index=True))
    on.create_schema()
    assert _index_exists(on)
    off = PostgresStore(postgres_settings(pg_url, tmp_path, state_gin_index=False))
    off.create_schema()
    assert not _index_exists(off)
    on.close()
    off.close()


def test_gin_index_left_invalid_is_rebuilt_and_writes_go_on(pg_url, tmp_path) -> None:
    """A build that died half-way leaves an INVALID index: the next start replaces it.
    The build is concurrent, so a write is not blocked behind it."""
    store = PostgresStore(postgres_settings(pg_url, tmp_path, state_gin_index=False))
    store.create_schema()
    assert not _index_exists(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE INDEX {GIN_INDEX_NAME} ON session_state (session_id)"))
        conn.execute(
            sa.text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(:n)"),
            {"n": GIN_INDEX_NAME},
        )
    on = PostgresStore(postgres_settings(pg_url, tmp_path, state_gin_index=True))
    on.create_schema()
    assert _index_exists(on)
    with on.engine.connect() as conn:
        valid, method = conn.execute(
            sa.text(
                "SELECT i.indisvalid, am.amname FROM pg_index i JOIN pg_class c "
                "ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
                "WHERE i.indexrelid = to_regclass(:n)"
            ),
            {"n": GIN_INDEX_NAME},
        ).one()
    assert (valid, method) == (True, "gin")
    store.close()
    on.close()


def test_gin_index_on_a_large_table_is_built_concurrently_in_the_background(
    pg_url, tmp_path, monkeypatch
) -> None:
    from council_app.store import gin_index

    off = PostgresStore(postgres_settings(pg_url, tmp_path, state_gin_index=False))
    off.create_schema()
    assert off.gin_index_job is None and not _index_exists(off)
    monkeypatch.setattr(gin_index, "SYNC_LIMIT_BYTES", 0)  # every table counts as large
    on = PostgresStore(postgres_settings(pg_url, tmp_path, state_gin_index=True))
    on.create_schema()
    assert on.gin_index_job is not None  # start-up did not wait for the build
    assert _index_exists(on)
    off.close()
    on.close()
